"""Access checks that combine the permission table with project membership."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Project, ProjectMember, User
from .permissions import MEMBERSHIP_REQUIRED, allowed


class AccessDenied(PermissionError):
    """The user may not do this."""


def is_member(session: Session, user: User, project_id: int) -> bool:
    return (
        session.scalars(
            select(ProjectMember.user_id).where(
                ProjectMember.project_id == project_id, ProjectMember.user_id == user.id
            )
        ).first()
        is not None
    )


def can(session: Session, user: User, action: str, project_id: int | None = None) -> bool:
    """True when `user` may perform `action` (on `project_id`, when given)."""
    if not user.is_active or not allowed(user.role, action):
        return False
    if project_id is not None and user.role in MEMBERSHIP_REQUIRED:
        return is_member(session, user, project_id)
    return True


def require(session: Session, user: User, action: str, project_id: int | None = None) -> None:
    """Raise AccessDenied unless `can(...)`."""
    if not can(session, user, action, project_id):
        raise AccessDenied(f"{user.role} {user.username!r} may not {action.replace('_', ' ')}")


def visible_projects(session: Session, user: User) -> list[Project]:
    """Projects a user can open: members' projects for annotators, every project otherwise."""
    query = select(Project).order_by(Project.name)
    if user.role in MEMBERSHIP_REQUIRED:
        query = query.join(ProjectMember, ProjectMember.project_id == Project.id).where(
            ProjectMember.user_id == user.id
        )
    return list(session.scalars(query))
