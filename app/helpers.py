"""Small helpers shared by the blueprints: the current user's row and access checks."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from annotator_backend.access import can
from annotator_backend.models import User

from .database import db


def current_db_user() -> User:
    """The logged-in user's row in the request's session."""
    user = db().get(User, int(current_user.id))
    if user is None or not user.is_active:
        abort(401)
    return user


def require_action(action: str, project_id: int | None = None) -> User:
    """The current user, or 403 unless they may perform `action`."""
    user = current_db_user()
    if not can(db(), user, action, project_id):
        abort(403, description=f"your role may not {action.replace('_', ' ')} here")
    return user
