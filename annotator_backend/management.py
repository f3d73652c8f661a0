"""What managers and admins change: project categories and members, image states, accounts.

Every function validates its input, raises a ValueError subclass with a message for the user,
and leaves committing to the caller.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from .assignment import OPEN_STATES
from .models import (
    Category,
    Image,
    ImageStatus,
    ImageTransition,
    Mask,
    ModelVersion,
    Project,
    ProjectMember,
    User,
    utcnow,
)
from .projects import PALETTE, ProjectError, create_project

COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_CATEGORY_NAME = 120
MAX_REASON = 500


class TransitionError(ValueError):
    """An image that cannot move to the asked state (already finished, leased by someone else)."""


class ReasonError(ValueError):
    """A missing or overlong skip reason."""


class AccountChangeError(ValueError):
    """An account change that is refused."""


@dataclass
class CategoryRow:
    """One row of the category form: `id` None for a new category."""

    id: int | None
    name: str
    color: str
    delete: bool = False


def _check_color(color: str, name: str) -> str:
    if not COLOR_RE.match(color or ""):
        raise ProjectError(f"category {name!r}: colour must look like #1f77b4")
    return color.lower()


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_CATEGORY_NAME:
        raise ProjectError(f"a category name has 1-{MAX_CATEGORY_NAME} characters")
    return name


def _users(session: Session, user_ids: list[int]) -> list[User]:
    ids = sorted(set(user_ids))
    users = list(session.scalars(select(User).where(User.id.in_(ids)))) if ids else []
    if len(users) != len(ids):
        raise ProjectError("unknown user among the members")
    return users


def set_members(session: Session, project: Project, user_ids: list[int]) -> None:
    """Make exactly `user_ids` the members of `project`."""
    wanted = {u.id for u in _users(session, user_ids)}
    current = set(
        session.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == project.id))
    )
    if current - wanted:
        session.execute(
            delete(ProjectMember).where(
                ProjectMember.project_id == project.id, ProjectMember.user_id.in_(current - wanted)
            )
        )
    for user_id in sorted(wanted - current):
        session.add(ProjectMember(project_id=project.id, user_id=user_id))
    session.flush()


def member_ids(session: Session, project_id: int) -> set[int]:
    """Ids of a project's members."""
    return set(session.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == project_id)))


def new_project(
    session: Session, name: str, rows: list[CategoryRow], members: list[int], creator: User
) -> Project:
    """Create a project with coloured categories (rows with an empty name are ignored) and members."""
    rows = [r for r in rows if (r.name or "").strip()]
    names = [_check_name(r.name) for r in rows]
    colors = [_check_color(r.color, n) for r, n in zip(rows, names, strict=True)]
    project = create_project(session, name, names, creator)
    for cat, color in zip(project.categories, colors, strict=True):
        cat.color = color
    set_members(session, project, members)
    return project


def update_project(
    session: Session, project: Project, name: str, rows: list[CategoryRow], members: list[int]
) -> None:
    """Rename the project, edit/add/delete categories, set the members."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ProjectError("a project name has 1-200 characters")
    clash = session.scalars(select(Project.id).where(Project.name == name, Project.id != project.id)).first()
    if clash is not None:
        raise ProjectError(f"project {name!r} exists already")
    project.name = name
    existing = {c.id: c for c in project.categories}
    kept: list[str] = []
    for row in rows:
        if row.id is None and not (row.name or "").strip():
            continue
        if row.id is not None and row.id not in existing:
            raise ProjectError("unknown category in the form")
        if row.delete:
            used = row.id and session.scalar(
                select(func.count()).select_from(Mask).where(Mask.category_id == row.id)
            )
            if used:
                raise ProjectError(
                    f"category {existing[row.id].name!r} has {used} masks: rename it instead of deleting"
                )
            continue
        kept.append(_check_name(row.name))
        if row.color:
            _check_color(row.color, kept[-1])
    if not kept:
        raise ProjectError("a project needs at least one category")
    if len(set(kept)) != len(kept):
        raise ProjectError("category names must be unique")
    live = [r for r in rows if not (r.id is None and not (r.name or "").strip())]
    for row in live:
        if row.id is not None and row.delete:
            session.delete(existing[row.id])
    session.flush()
    renamed = [r for r in live if r.id is not None and not r.delete and existing[r.id].name != r.name.strip()]
    for row in renamed:  # temporary names first, so that swapping two names never clashes
        existing[row.id].name = f"~renaming~{uuid.uuid4().hex}"
    session.flush()
    for position, row in enumerate(r for r in live if not r.delete):
        cat = existing[row.id] if row.id is not None else Category(project_id=project.id)
        cat.name = _check_name(row.name)
        cat.color = _check_color(row.color or PALETTE[position % len(PALETTE)], cat.name)
        cat.position = position
        session.add(cat)
    set_members(session, project, members)
    session.flush()


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _move(session: Session, user: User, image: Image, to_status: str, reason: str = "") -> bool:
    """Move an open image to `to_status`, releasing its lease; False when it is there already."""
    if image.status == to_status:
        return False
    if image.status not in OPEN_STATES:
        raise TransitionError(f"image {image.id} is {image.status.replace('_', ' ')} already")
    expires = _aware(image.lease_expires_at)
    if image.lease_user_id not in (None, user.id) and expires is not None and expires > utcnow():
        raise TransitionError(f"image {image.id} is leased to another annotator")
    session.add(
        ImageTransition(
            image_id=image.id, user_id=user.id, from_status=image.status, to_status=to_status, reason=reason
        )
    )
    image.status = to_status
    image.lease_user_id = None
    image.lease_expires_at = None
    session.flush()
    return True


def finish_image(session: Session, user: User, image: Image) -> bool:
    """Mark an image done and release its lease; False when it was done already."""
    return _move(session, user, image, ImageStatus.done.value)


def skip_image(session: Session, user: User, image: Image, reason: str) -> bool:
    """Take an image out of the queue with a reason; False when it was skipped already."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise ReasonError('say why the image is skipped: {"reason": "..."}')
    if len(reason) > MAX_REASON:
        raise ReasonError(f"a skip reason has at most {MAX_REASON} characters")
    return _move(session, user, image, ImageStatus.skipped.value, reason)


def requeue_image(session: Session, user: User, image: Image) -> None:
    """Put a skipped or finished image back into the queue."""
    if image.status in OPEN_STATES:
        raise TransitionError(f"image {image.id} is in the queue already")
    session.add(
        ImageTransition(
            image_id=image.id, user_id=user.id, from_status=image.status, to_status=ImageStatus.new.value
        )
    )
    image.status = ImageStatus.new.value
    session.flush()


def all_users(session: Session) -> list[User]:
    """Every account, by username."""
    return list(session.scalars(select(User).order_by(User.username)))


def set_user_active(session: Session, acting: User, user_id: int, active: bool) -> User:
    """Deactivate (or reactivate) an account; nobody deactivates their own account."""
    user = session.get(User, user_id)
    if user is None:
        raise AccountChangeError(f"no user {user_id}")
    if user.id == acting.id and not active:
        raise AccountChangeError("you cannot deactivate your own account")
    user.is_active = active
    if not active:  # their leased images go back to the queue now, not when the leases expire
        session.execute(
            update(Image)
            .where(Image.lease_user_id == user.id)
            .values(lease_user_id=None, lease_expires_at=None)
        )
    session.flush()
    return user


def model_versions(session: Session) -> list[ModelVersion]:
    """Every model version, newest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))
