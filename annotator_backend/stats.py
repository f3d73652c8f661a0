"""Project progress and annotator speed for the manager's project page, and its chart's geometry.

Masks counted are accepted or verified ones; speed figures use masks drawn by annotators
(source "annotator") whose active time was recorded. Medians are computed in Python so that the
same code runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from .assignment import OPEN_STATES
from .models import (
    AnnotationSession,
    Image,
    ImageStatus,
    ImageTransition,
    Job,
    Mask,
    MaskStatus,
    User,
    utcnow,
)

COUNTED = (MaskStatus.accepted.value, MaskStatus.verified.value)
SERIES_COLORS = ["#1d4ed8", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#4d7c0f"]
BUCKETS = ((3600, "%m-%d %H:00"), (86400, "%Y-%m-%d"), (7 * 86400, "%Y-%m-%d"), (30 * 86400, "%Y-%m"))
MAX_BUCKETS = 60
MAX_SERIES = 6


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass
class ImageCounts:
    """Images of a project by state, and how many are leased right now."""

    by_state: dict[str, int]
    leased: int

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


def image_counts(session: Session, project_id: int) -> ImageCounts:
    rows = session.execute(
        select(Image.status, func.count()).where(Image.project_id == project_id).group_by(Image.status)
    ).all()
    by_state = {s.value: 0 for s in ImageStatus}
    by_state.update(dict(rows))
    leased = session.scalar(
        select(func.count())
        .select_from(Image)
        .where(
            Image.project_id == project_id,
            Image.status.in_(OPEN_STATES),
            Image.lease_user_id.is_not(None),
            Image.lease_expires_at > utcnow(),
        )
    )
    return ImageCounts(by_state, int(leased or 0))


@dataclass
class MaskSummary:
    total: int
    images_with_masks: int
    per_image: float  # over all images of the project
    per_done_image: float | None  # over finished images


def mask_summary(session: Session, project_id: int, counts: ImageCounts) -> MaskSummary:
    base = (
        select(func.count(Mask.id), func.count(distinct(Mask.image_id)))
        .join(Image, Image.id == Mask.image_id)
        .where(Image.project_id == project_id, Mask.status.in_(COUNTED))
    )
    total, with_masks = session.execute(base).one()
    done_masks = session.scalar(
        select(func.count(Mask.id))
        .join(Image, Image.id == Mask.image_id)
        .where(
            Image.project_id == project_id, Mask.status.in_(COUNTED), Image.status == ImageStatus.done.value
        )
    )
    done = counts.by_state.get(ImageStatus.done.value, 0)
    return MaskSummary(
        total=int(total),
        images_with_masks=int(with_masks),
        per_image=total / counts.total if counts.total else 0.0,
        per_done_image=(done_masks or 0) / done if done else None,
    )


@dataclass
class AnnotatorRow:
    user_id: int
    username: str
    masks: int
    hours: float  # time in annotation sessions (first to last event), at least the masks' active time
    masks_per_hour: float | None
    median_seconds: float | None  # median active seconds per mask
    clicks_per_mask: float


def _annotator_masks(project_id: int):  # noqa: ANN202
    return (
        select(Mask)
        .join(Image, Image.id == Mask.image_id)
        .where(
            Image.project_id == project_id,
            Mask.status.in_(COUNTED),
            Mask.source == "annotator",
            Mask.author_id.is_not(None),
        )
    )


def annotator_rows(session: Session, project_id: int) -> list[AnnotatorRow]:
    """Per annotator: masks, masks per hour, median active seconds per mask, clicks per mask."""
    masks = _annotator_masks(project_id).subquery()
    totals = session.execute(
        select(masks.c.author_id, func.count(), func.avg(masks.c.clicks), func.sum(masks.c.active_ms))
        .group_by(masks.c.author_id)
        .order_by(masks.c.author_id)
    ).all()
    if not totals:
        return []
    durations: dict[int, list[int]] = defaultdict(list)
    for author, ms in session.execute(
        select(masks.c.author_id, masks.c.active_ms).where(masks.c.active_ms > 0)
    ):
        durations[author].append(ms)
    spans: dict[int, float] = defaultdict(float)
    for user_id, start, last in session.execute(
        select(
            AnnotationSession.user_id, AnnotationSession.started_at, AnnotationSession.last_event_at
        ).where(AnnotationSession.project_id == project_id, AnnotationSession.last_event_at.is_not(None))
    ):
        spans[user_id] += max(0.0, (_utc(last) - _utc(start)).total_seconds())
    names = dict(
        session.execute(select(User.id, User.username).where(User.id.in_([t[0] for t in totals]))).all()
    )
    rows = []
    for author, count, clicks, active_ms in totals:
        seconds = max(spans.get(author, 0.0), float(active_ms or 0) / 1000.0)
        rows.append(
            AnnotatorRow(
                user_id=author,
                username=names.get(author, f"user {author}"),
                masks=int(count),
                hours=seconds / 3600.0,
                masks_per_hour=count * 3600.0 / seconds if seconds > 0 else None,
                median_seconds=statistics.median(durations[author]) / 1000.0 if durations[author] else None,
                clicks_per_mask=float(clicks or 0.0),
            )
        )
    return sorted(rows, key=lambda r: (-r.masks, r.username))


@dataclass
class Series:
    """Median active seconds per mask in consecutive time buckets."""

    name: str
    points: list[tuple[datetime, float, int]]  # (bucket start, median seconds, masks)


@dataclass
class Timeline:
    step_seconds: int
    label_format: str
    series: list[Series]


def seconds_per_mask_timeline(session: Session, project_id: int) -> Timeline:
    """The figure the SAM paper tracked: seconds per mask over time, overall and per annotator."""
    masks = _annotator_masks(project_id).where(Mask.active_ms > 0).subquery()
    rows = session.execute(
        select(masks.c.created_at, masks.c.active_ms, masks.c.author_id).order_by(masks.c.created_at)
    )
    data = [(_utc(t).timestamp(), ms / 1000.0, a) for t, ms, a in rows]
    if not data:
        return Timeline(86400, BUCKETS[1][1], [])
    span = data[-1][0] - data[0][0]
    step, fmt = next(((s, f) for s, f in BUCKETS if span / s < MAX_BUCKETS), BUCKETS[-1])
    everyone: dict[int, list[float]] = defaultdict(list)
    per_author: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for ts, seconds, author in data:
        bucket = int(ts // step) * step
        everyone[bucket].append(seconds)
        per_author[author][bucket].append(seconds)

    def series(name: str, buckets: dict[int, list[float]]) -> Series:
        return Series(
            name,
            [
                (datetime.fromtimestamp(b, UTC), statistics.median(v), len(v))
                for b, v in sorted(buckets.items())
            ],
        )

    top = sorted(per_author, key=lambda a: -sum(len(v) for v in per_author[a].values()))[:MAX_SERIES]
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(top))).all())
    out = [series("all annotators", everyone)]
    out += [series(names.get(a, f"user {a}"), per_author[a]) for a in top]
    return Timeline(step, fmt, out)


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 4, 6, 8, 10) if m * magnitude >= value)


@dataclass
class ChartLine:
    name: str
    color: str
    width: float
    points: str  # SVG polyline points "x,y x,y ..."
    dots: list[tuple[float, float, str]]  # x, y, tooltip


@dataclass
class Chart:
    """Everything an SVG template needs; text is plain data, escaped by the template."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    lines: list[ChartLine] = field(default_factory=list)
    x_ticks: list[tuple[float, str, str]] = field(default_factory=list)  # x, label, text-anchor
    y_ticks: list[tuple[float, str]] = field(default_factory=list)


def chart(timeline: Timeline, width: int = 720, height: int = 260) -> Chart:
    """Lay out the timeline as polylines in a `width` x `height` SVG (y: seconds per mask)."""
    c = Chart(width, height, left=52, top=12, right=width - 14, bottom=height - 40)
    points = [p for s in timeline.series for p in s.points]
    if not points:
        return c
    t0 = min(p[0] for p in points).timestamp()
    t1 = max(p[0] for p in points).timestamp()
    if t1 <= t0:
        t0, t1 = t0 - timeline.step_seconds, t1 + timeline.step_seconds
    y_max = _nice_ceiling(max(p[1] for p in points))

    def x_of(t: datetime) -> float:
        return round(c.left + (t.timestamp() - t0) / (t1 - t0) * (c.right - c.left), 1)

    def y_of(v: float) -> float:
        return round(c.bottom - v / y_max * (c.bottom - c.top), 1)

    for i in range(5):
        v = y_max * i / 4
        c.y_ticks.append((y_of(v), f"{v:g}"))
    ticks = min(6, len({p[0] for p in points}))
    for i in range(ticks):
        t = t0 + (t1 - t0) * i / max(1, ticks - 1)
        anchor = "start" if i == 0 and ticks > 1 else "end" if i == ticks - 1 and ticks > 1 else "middle"
        c.x_ticks.append((x_of(datetime.fromtimestamp(t, UTC)), _label(t, timeline.label_format), anchor))
    for i, s in enumerate(timeline.series):
        xy = [(x_of(t), y_of(v), f"{s.name}: {v:.1f} s/mask, {n} masks") for t, v, n in s.points]
        c.lines.append(
            ChartLine(
                name=s.name,
                color="#111827" if i == 0 else SERIES_COLORS[(i - 1) % len(SERIES_COLORS)],
                width=3.0 if i == 0 else 1.5,
                points=" ".join(f"{x},{y}" for x, y, _ in xy),
                dots=xy,
            )
        )
    return c


def _label(ts: float, fmt: str) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def job_dict(job: Job) -> dict[str, Any]:
    """A job as the project page shows it."""
    progress = job.progress or {}
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "done": progress.get("done"),
        "total": progress.get("total"),
        "error": (job.error or "").split("\n", 1)[0][:300],
        "created_at": _utc(job.created_at).isoformat() if job.created_at else None,
    }


def recent_jobs(session: Session, project_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The project's latest jobs, newest first."""
    jobs = session.scalars(
        select(Job).where(Job.project_id == project_id).order_by(Job.id.desc()).limit(limit)
    )
    return [job_dict(j) for j in jobs]


@dataclass
class SkippedImage:
    image_id: int
    name: str
    reason: str
    username: str
    at: datetime | None


def skipped_images(session: Session, project_id: int, limit: int = 100) -> list[SkippedImage]:
    """Skipped images with the reason of their latest skip."""
    latest = (
        select(ImageTransition.image_id, func.max(ImageTransition.id).label("tid"))
        .where(ImageTransition.to_status == ImageStatus.skipped.value)
        .group_by(ImageTransition.image_id)
        .subquery()
    )
    rows = session.execute(
        select(Image, ImageTransition, User.username)
        .join(latest, latest.c.image_id == Image.id, isouter=True)
        .join(ImageTransition, ImageTransition.id == latest.c.tid, isouter=True)
        .join(User, User.id == ImageTransition.user_id, isouter=True)
        .where(Image.project_id == project_id, Image.status == ImageStatus.skipped.value)
        .order_by(Image.id)
        .limit(limit)
    )
    return [
        SkippedImage(
            image.id,
            image.original_name,
            t.reason if t else "",
            name or "",
            _utc(t.created_at) if t else None,
        )
        for image, t, name in rows
    ]
