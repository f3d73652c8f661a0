"""Login and logout with Flask-Login; passwords checked by annotator_backend.accounts."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import UserMixin, login_required, login_user, logout_user

from annotator_backend.accounts import authenticate
from annotator_backend.models import User

from .database import db
from .extensions import login_manager

bp = Blueprint("auth", __name__)


@dataclass
class SessionUser(UserMixin):
    """The logged-in user as Flask-Login sees it (a detached copy of the row)."""

    id: int
    username: str
    role: str
    active: bool = True

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.active

    @classmethod
    def of(cls, user: User) -> SessionUser:
        return cls(id=user.id, username=user.username, role=user.role, active=user.is_active)


@login_manager.user_loader
def load_user(user_id: str) -> SessionUser | None:
    user = db().get(User, int(user_id)) if user_id.isdigit() else None
    return SessionUser.of(user) if user is not None and user.is_active else None


@login_manager.unauthorized_handler
def unauthorized():  # noqa: ANN201
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        return {"error": "log in first"}, 401
    return redirect(url_for("auth.login", next=request.full_path))


def _safe_next(target: str | None) -> str:
    """Only local paths are followed after login."""
    if not target:
        return url_for("main.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():  # noqa: ANN201
    if request.method == "POST":
        user = authenticate(db(), request.form.get("username", ""), request.form.get("password", ""))
        if user is None:
            flash("Wrong username or password.", "error")
            return render_template("login.html"), 401
        login_user(SessionUser.of(user))
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
@login_required
def logout():  # noqa: ANN201
    logout_user()
    return redirect(url_for("auth.login"))
