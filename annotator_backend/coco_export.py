"""Streaming COCO export: masks as RLE (lossless) or polygons, and the event log as JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from . import rle as rlelib
from .models import Category, Event, Image, Mask, MaskStatus, Project

STATUSES = {
    "accepted": (MaskStatus.accepted.value, MaskStatus.verified.value),
    "verified": (MaskStatus.verified.value,),
    "all": (MaskStatus.accepted.value, MaskStatus.verified.value, MaskStatus.rejected.value),
}
POLYGON_NOTE = (
    "polygon format: outer contours only, traced on the pixel grid; holes are filled and parts "
    "smaller than 3 pixels are dropped. Use the default RLE format for lossless masks."
)
BATCH = 2000


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a binary mask as COCO polygons [x1, y1, x2, y2, ...]."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3:
            polys.append([float(v) + 0.5 for v in c.reshape(-1)])
    return polys


# What an annotation needs, as plain columns: no ORM objects to build for 100k rows.
_ANNOTATION_COLUMNS = (
    Mask.id,
    Mask.image_id,
    Mask.category_id,
    Mask.rle_counts,
    Mask.area,
    Mask.bbox,
    Mask.status,
    Mask.source,
    Mask.author_id,
    Mask.model_version_id,
    Mask.active_ms,
    Mask.clicks,
    Mask.strokes,
    Image.height,
    Image.width,
)


def _annotation(row: Row[Any], fmt: str) -> dict[str, Any] | None:
    rle = {"size": [row.height, row.width], "counts": row.rle_counts}
    if fmt == "polygon":
        segmentation: Any = mask_to_polygons(rlelib.decode(rle))
        if not segmentation:
            return None
    else:
        segmentation = rle
    return {
        "id": row.id,
        "image_id": row.image_id,
        "category_id": row.category_id,
        "segmentation": segmentation,
        "area": row.area,
        "bbox": row.bbox,
        "iscrowd": 0,
        "status": row.status,
        "source": row.source,
        "author_id": row.author_id,
        "model_version_id": row.model_version_id,
        "active_seconds": round(row.active_ms / 1000.0, 3),
        "clicks": row.clicks,
        "strokes": row.strokes,
    }


def _mask_rows(session: Session, project: Project, status: str) -> Iterator[Row[Any]]:
    query = (
        select(*_ANNOTATION_COLUMNS)
        .join(Image, Image.id == Mask.image_id)
        .where(Image.project_id == project.id, Mask.status.in_(STATUSES[status]))
        .order_by(Mask.id)
        .execution_options(yield_per=BATCH)
    )
    yield from session.execute(query)


def _masks(session: Session, project: Project, status: str) -> Iterator[tuple[Mask, Image]]:
    query = (
        select(Mask, Image)
        .join(Image, Image.id == Mask.image_id)
        .where(Image.project_id == project.id, Mask.status.in_(STATUSES[status]))
        .order_by(Mask.id)
        .execution_options(yield_per=BATCH)
    )
    yield from session.execute(query)  # rows unpack as (mask, image)


def write_coco(
    session: Session, project: Project, out: IO[str], fmt: str = "rle", status: str = "accepted"
) -> int:
    """Stream a COCO instances JSON of `project` to `out`; returns the number of annotations."""
    if fmt not in ("rle", "polygon"):
        raise ValueError("format must be rle or polygon")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    info = {
        "description": f"project {project.name}",
        "date_created": datetime.now(UTC).isoformat(),
        "format": fmt,
        "mask_status": status,
    }
    if fmt == "polygon":
        info["note"] = POLYGON_NOTE
    cats = session.scalars(
        select(Category).where(Category.project_id == project.id).order_by(Category.position)
    )
    out.write('{"info": ' + json.dumps(info) + ', "licenses": [], "categories": ')
    out.write(json.dumps([{"id": c.id, "name": c.name, "supercategory": "", "color": c.color} for c in cats]))
    out.write(', "images": [')
    images = session.scalars(
        select(Image)
        .where(Image.project_id == project.id)
        .order_by(Image.id)
        .execution_options(yield_per=BATCH)
    )
    for i, image in enumerate(images):
        entry = {
            "id": image.id,
            "file_name": image.original_name,
            "width": image.width,
            "height": image.height,
            "sha256": image.sha256,
            "status": image.status,
        }
        out.write(("," if i else "") + json.dumps(entry))
    out.write('], "annotations": [')
    count = 0
    for row in _mask_rows(session, project, status):
        ann = _annotation(row, fmt)
        if ann is None:
            continue
        out.write(("," if count else "") + "\n" + json.dumps(ann, separators=(",", ":")))
        count += 1
    out.write("\n]}\n")
    return count


def write_events(session: Session, project: Project, out: IO[str], status: str = "accepted") -> int:
    """JSON Lines: one line per exported mask with its timings and the events of its session."""
    count = 0
    for mask, _image in _masks(session, project, status):
        events = []
        if mask.session_id is not None:
            rows = session.scalars(
                select(Event).where(Event.session_id == mask.session_id).order_by(Event.seq)
            )
            events = [
                {
                    "uuid": e.uuid,
                    "seq": e.seq,
                    "type": e.type,
                    "payload": e.payload,
                    "client_ts": e.client_ts,
                    "server_ts": e.server_ts.isoformat(),
                    "decoder_ms": e.decoder_ms,
                    "mask_id": e.mask_id,
                }
                for e in rows
            ]
        line = {
            "mask_id": mask.id,
            "image_id": mask.image_id,
            "author_id": mask.author_id,
            "active_seconds": mask.active_ms / 1000.0,
            "clicks": mask.clicks,
            "strokes": mask.strokes,
            "session_events": events,
        }
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        count += 1
    return count


def export_project(
    session: Session,
    project: Project,
    out: Path,
    fmt: str = "rle",
    status: str = "accepted",
    events_out: Path | None = None,
) -> int:
    """Write the COCO file (through a temporary file, renamed at the end) and optional events."""
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "w", encoding="utf-8") as f:
        count = write_coco(session, project, f, fmt, status)
    tmp.replace(out)
    if events_out is not None:
        with open(events_out, "w", encoding="utf-8") as f:
            write_events(session, project, f, status)
    return count
