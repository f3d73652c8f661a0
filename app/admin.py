"""Admin pages: accounts (list, create, deactivate) and model versions (list, activate)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

from annotator_backend.accounts import MIN_PASSWORD, AccountError, add_user
from annotator_backend.management import AccountChangeError, all_users, model_versions, set_user_active
from annotator_backend.models import ModelVersion, Role, User
from annotator_backend.retrain import RetrainError, promote

from .database import db, settings
from .projects import check

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _users_page(me: User, status: int = 200, form: dict | None = None):  # noqa: ANN202
    page = render_template(
        "admin_users.html",
        users=all_users(db()),
        roles=[r.value for r in Role],
        me=me.id,
        min_password=MIN_PASSWORD,
        form=form or {},
    )
    return page, status


@bp.route("/users", methods=["GET", "POST"])
@login_required
def users():  # noqa: ANN201
    me = check()
    if request.method == "GET":
        return _users_page(me)
    session = db()
    form = request.form
    try:
        user = add_user(
            session, form.get("username", "").strip(), form.get("role", ""), form.get("password", "")
        )
        session.commit()
    except AccountError as exc:
        session.rollback()
        flash(str(exc), "error")
        return _users_page(me, 400, {"username": form.get("username", ""), "role": form.get("role", "")})
    flash(f"User {user.username} ({user.role}) created.")
    return redirect(url_for("admin.users"), 303)


def _set_active(user_id: int, active: bool):  # noqa: ANN202
    me = check()
    session = db()
    try:
        user = set_user_active(session, me, user_id, active)
        session.commit()
    except AccountChangeError as exc:
        session.rollback()
        flash(str(exc), "error")
        return _users_page(me, 404 if session.get(User, user_id) is None else 400)
    flash(f"User {user.username} {'reactivated' if active else 'deactivated'}.")
    return redirect(url_for("admin.users"), 303)


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"])
@login_required
def deactivate_user(user_id: int):  # noqa: ANN201
    return _set_active(user_id, False)


@bp.route("/users/<int:user_id>/reactivate", methods=["POST"])
@login_required
def reactivate_user(user_id: int):  # noqa: ANN201
    return _set_active(user_id, True)


@bp.route("/models")
@login_required
def models():  # noqa: ANN201
    check()
    return render_template("admin_models.html", versions=model_versions(db()))


@bp.route("/models/<int:version_id>/activate", methods=["POST"])
@login_required
def activate_model(version_id: int):  # noqa: ANN201
    """Activate through `retrain.promote`: re-embedding is queued when the encoder changes."""
    user = check()
    session = db()
    try:
        outcome = promote(session, settings(), version_id, user.id)
    except LookupError:
        session.rollback()
        abort(404, description="no such model version")
    except RetrainError as exc:
        session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.models"), 303)
    version = session.get(ModelVersion, version_id)
    queued = (
        f" Re-embedding queued (jobs {', '.join(map(str, outcome['embed_jobs']))})."
        if outcome["embed_jobs"]
        else ""
    )
    flash(f"Model {version.name} is now the active model.{queued}")
    return redirect(url_for("admin.models"), 303)
