"""Users and passwords (werkzeug's scrypt hashing)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from .models import Role, User

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,80}$")
MIN_PASSWORD = 8


class AccountError(ValueError):
    """A username, role or password that cannot be used."""


def add_user(session: Session, username: str, role: str, password: str) -> User:
    """Create a user; the caller commits."""
    if not USERNAME_RE.match(username):
        raise AccountError("usernames are 1-80 letters, digits or _ . @ -")
    if role not in {r.value for r in Role}:
        raise AccountError(f"unknown role {role!r}; expected annotator, manager or admin")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"passwords have at least {MIN_PASSWORD} characters")
    if session.scalars(select(User).where(User.username == username)).first() is not None:
        raise AccountError(f"user {username!r} exists already")
    user = User(username=username, role=role, password_hash=generate_password_hash(password))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None or not user.is_active or not check_password_hash(user.password_hash, password):
        return None
    return user


def find_user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user
