"""The web layer: application factory, blueprints and Socket.IO handlers."""

from __future__ import annotations

import os

from flask import Flask

from annotator_backend.config import REPO_ROOT, Settings, load_settings

from .extensions import csrf, login_manager, socketio


def create_app(settings: Settings | None = None, **config: object) -> Flask:
    """Build the Flask app for `settings` (default: from the environment)."""
    settings = settings or load_settings()
    https = os.environ.get("PREFERRED_URL_SCHEME", "http").lower() == "https"
    app = Flask(
        __name__,
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
    )
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PREFERRED_URL_SCHEME="https" if https else "http",
        MAX_CONTENT_LENGTH=80 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.update(config)
    if "SESSION_COOKIE_SECURE" not in config:  # Secure cookies whenever the app is served over HTTPS
        secure = app.config["PREFERRED_URL_SCHEME"] == "https"
        app.config.update(SESSION_COOKIE_SECURE=secure, REMEMBER_COOKIE_SECURE=secure)

    from . import admin, api, auth, main, projects, rounds, sockets
    from .database import close_db
    from .security import add_security_headers

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(projects.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(rounds.bp)
    app.teardown_appcontext(close_db)
    app.after_request(add_security_headers)
    message_queue = settings.redis_url if config.get("SOCKETIO_MESSAGE_QUEUE", True) else None
    # cors_allowed_origins=None: Engine.IO accepts only the app's own origin (explicit on purpose).
    socketio.init_app(app, async_mode="threading", message_queue=message_queue, cors_allowed_origins=None)
    sockets.register(socketio)
    return app
