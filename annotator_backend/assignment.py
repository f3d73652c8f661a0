"""Which image an annotator works on next: leases, so two people never hold the same image."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from .models import Image, ImageStatus, Project, User, utcnow

LEASE = timedelta(minutes=30)
OPEN_STATES = (ImageStatus.new.value, ImageStatus.in_progress.value)


def next_image(session: Session, user: User, project: Project, exclude: int | None = None) -> Image | None:
    """The image `user` holds, else the first open image nobody holds, leased to `user`.

    The caller commits. The lease is taken with a conditional UPDATE (compare-and-set), so two
    concurrent requests never lease the same image; on PostgreSQL candidate rows are also locked
    (SKIP LOCKED) so concurrent requests spread over different images.

    `exclude` (prefetch): the image the annotator has open; the answer is another image, held or
    newly leased. A new lease is taken only when the user holds nothing but `exclude`, so an
    annotator holds at most two images: the open one and the one reserved to come next. Both
    leases expire like any other and are renewed when the image is asked for again.
    """
    now = utcnow()
    mine = [
        Image.project_id == project.id,
        Image.lease_user_id == user.id,
        Image.lease_expires_at > now,
        Image.status.in_(OPEN_STATES),
    ]
    if exclude is not None:
        mine.append(Image.id != exclude)
    held = session.scalars(select(Image).where(*mine).order_by(Image.id)).first()
    if held is not None:
        held.lease_expires_at = now + LEASE
        return held
    free = or_(Image.lease_user_id.is_(None), Image.lease_expires_at <= now, Image.lease_user_id == user.id)
    if exclude is not None:
        free = and_(free, Image.id != exclude)
    query = (
        select(Image.id)
        .where(Image.project_id == project.id, Image.status.in_(OPEN_STATES), free)
        .order_by(Image.id)
    )
    if session.get_bind().dialect.name == "postgresql":  # lock one free row, skip rows others hold
        query = query.limit(1).with_for_update(skip_locked=True)
    else:
        query = query.limit(8)
    for _ in range(20):
        candidates = list(session.scalars(query))
        if not candidates:
            return None
        for image_id in candidates:
            # Compare-and-set: only one request can move the lease from free to taken.
            claimed = session.execute(
                update(Image)
                .where(Image.id == image_id, Image.status.in_(OPEN_STATES), free)
                .values(lease_user_id=user.id, lease_expires_at=now + LEASE)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed:
                image = session.get(Image, image_id)
                session.refresh(image)
                return image
    return None


def release(session: Session, image: Image, user: User, status: str | None = None) -> None:
    """Give up the lease on an image, optionally moving it to `status` (done, skipped)."""
    if image.lease_user_id == user.id:
        image.lease_user_id = None
        image.lease_expires_at = None
    if status is not None:
        image.status = status
