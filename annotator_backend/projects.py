"""Projects, their categories and members."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Category, Project, ProjectMember, User

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]


class ProjectError(ValueError):
    """A project name or category list that cannot be used."""


def create_project(
    session: Session, name: str, categories: list[str], creator: User | None = None
) -> Project:
    """Create a project with categories (in order); the caller commits."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ProjectError("a project name has 1-200 characters")
    if session.scalars(select(Project).where(Project.name == name)).first() is not None:
        raise ProjectError(f"project {name!r} exists already")
    cats = [c.strip() for c in categories if c.strip()]
    if not cats:
        raise ProjectError("a project needs at least one category")
    if len(set(cats)) != len(cats):
        raise ProjectError("category names must be unique")
    project = Project(name=name, created_by_id=creator.id if creator else None)
    session.add(project)
    session.flush()
    for i, cat in enumerate(cats):
        session.add(
            Category(project_id=project.id, name=cat[:120], color=PALETTE[i % len(PALETTE)], position=i)
        )
    session.flush()
    return project


def find_project(session: Session, name_or_id: str | int) -> Project:
    """A project by name, or by id when given a number."""
    project = None
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        project = session.get(Project, int(name_or_id))
    if project is None:
        project = session.scalars(select(Project).where(Project.name == str(name_or_id))).first()
    if project is None:
        raise ProjectError(f"no project {name_or_id!r}")
    return project


def add_member(session: Session, project: Project, user: User) -> None:
    """Make `user` a member of `project` (idempotent)."""
    if session.get(ProjectMember, (project.id, user.id)) is None:
        session.add(ProjectMember(project_id=project.id, user_id=user.id))
        session.flush()
