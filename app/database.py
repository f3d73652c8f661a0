"""One SQLAlchemy session per request (or per Socket.IO event), closed at teardown."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from annotator_backend.config import Settings
from annotator_backend.db import session_factory


def settings() -> Settings:
    """The settings the app was created with."""
    return current_app.config["SETTINGS"]


def db() -> Session:
    """The request's database session."""
    if "db" not in g:
        g.db = session_factory(settings().database_url)()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()
