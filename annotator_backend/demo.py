"""The demo set-up of `make run`: a project with sample images, demo users, a model, embeddings."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .accounts import add_user
from .config import Settings
from .embeddings import embed_images, missing_images
from .images import import_folder
from .model_registry import active_version, register_bootstrap, register_untrained_vit_b
from .models import ModelVersion, Project, User
from .projects import add_member, create_project

DEMO_IMAGES = Path(__file__).parent / "demo_images"
DEMO_PROJECT = "demo"
DEMO_CATEGORIES = ["person", "animal", "object", "background stuff"]
DEMO_USERS = [
    ("annotator", "annotator", "annotate-demo"),
    ("manager", "manager", "manage-demo"),
    ("admin", "admin", "admin-demo-pass"),
]


def seed_demo(session: Session, settings: Settings, log=print) -> Project:  # noqa: ANN001
    """Create (idempotently) the demo project, users, model and embeddings."""
    users = []
    for username, role, password in DEMO_USERS:
        user = session.scalars(select(User).where(User.username == username)).first()
        if user is None:
            user = add_user(session, username, role, password)
        users.append(user)
    project = session.scalars(select(Project).where(Project.name == DEMO_PROJECT)).first()
    if project is None:
        project = create_project(session, DEMO_PROJECT, DEMO_CATEGORIES, creator=users[1])
    for user in users:
        add_member(session, project, user)
    session.commit()
    report = import_folder(session, settings, project, DEMO_IMAGES)
    if report.added:
        log(f"imported {len(report.added)} demo images")

    version = active_version(session) or register_bootstrap(session, settings)
    if version is None:
        if session.scalars(select(ModelVersion).limit(1)).first() is None:
            log("no trained model at hand: registering an UNTRAINED vit_b (random weights)")
            version = register_untrained_vit_b(session, settings)
        else:
            raise RuntimeError("no active model: activate one with `annotator model activate ID`")
    session.commit()
    if not version.trained:
        log(f"WARNING: the active model '{version.name}' is UNTRAINED: its masks are random.")
    embed_images(session, settings, missing_images(session, project, version), version)
    log("demo logins (username / password):")
    for username, role, password in DEMO_USERS:
        log(f"  {username:<10} / {password:<16} ({role})")
    return project
