"""Which image an annotator works on next: leases, so two people never hold the same image."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .models import Image, ImageStatus, Project, User, utcnow

LEASE = timedelta(minutes=30)
OPEN_STATES = (ImageStatus.new.value, ImageStatus.in_progress.value)


def next_image(session: Session, user: User, project: Project) -> Image | None:
    """The image `user` holds, else the first open image nobody holds, leased to `user`.

    The caller commits. On PostgreSQL the candidate row is locked (SKIP LOCKED) so two
    concurrent requests never lease the same image.
    """
    now = utcnow()
    held = session.scalars(
        select(Image)
        .where(
            Image.project_id == project.id,
            Image.lease_user_id == user.id,
            Image.lease_expires_at > now,
            Image.status.in_(OPEN_STATES),
        )
        .order_by(Image.id)
    ).first()
    if held is not None:
        held.lease_expires_at = now + LEASE
        return held
    query = (
        select(Image)
        .where(
            Image.project_id == project.id,
            Image.status.in_(OPEN_STATES),
            or_(Image.lease_user_id.is_(None), Image.lease_expires_at <= now, Image.lease_user_id == user.id),
        )
        .order_by(Image.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    image = session.scalars(query).first()
    if image is not None:
        image.lease_user_id = user.id
        image.lease_expires_at = now + LEASE
    return image


def release(session: Session, image: Image, user: User, status: str | None = None) -> None:
    """Give up the lease on an image, optionally moving it to `status` (done, skipped)."""
    if image.lease_user_id == user.id:
        image.lease_user_id = None
        image.lease_expires_at = None
    if status is not None:
        image.status = status
