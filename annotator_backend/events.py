"""The event log: validate an event, store it exactly once, apply what it means (accept, delete)."""

from __future__ import annotations

import json
import math
import uuid as uuidlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import rle as rlelib
from .access import AccessDenied, require
from .models import (
    AnnotationSession,
    Category,
    Event,
    Image,
    ImageStatus,
    Mask,
    MaskStatus,
    ModelVersion,
    User,
    utcnow,
)

EVENT_TYPES = frozenset(
    {
        "click",
        "box",
        "stroke",
        "erase",
        "undo",
        "redo",
        "clear",
        "multimask_choice",
        "accept",
        "delete",
        "category_change",
        "hide",
        "show",
        "select",
        "image_open",
        "skip",
        "finish",
    }
)
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024


class EventError(ValueError):
    """A malformed event, or one that does not fit the image or project."""


def _uuid(value: Any, field: str) -> str:
    try:
        return str(uuidlib.UUID(str(value)))
    except (ValueError, TypeError, AttributeError) as exc:
        raise EventError(f"'{field}' must be a UUID") from exc


def _int(value: Any, field: str, lo: int = 0, hi: int = 2**31 - 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise EventError(f"'{field}' must be an integer in [{lo}, {hi}]")
    return value


def _num(value: Any, field: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventError(f"'{field}' must be a finite number")
    if not lo <= value <= hi:
        raise EventError(f"'{field}' must be in [{lo}, {hi}]")
    return float(value)


def validate_envelope(raw: Any) -> dict[str, Any]:
    """Check the fields every event has; returns a cleaned copy."""
    if not isinstance(raw, dict):
        raise EventError("an event is a JSON object")
    if raw.get("type") not in EVENT_TYPES:
        raise EventError(f"unknown event type {raw.get('type')!r}")
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        raise EventError("'payload' must be an object")
    if len(json.dumps(payload)) > MAX_PAYLOAD_BYTES:
        raise EventError("payload too large")
    decoder_ms = raw.get("decoder_ms")
    mv = raw.get("model_version_id")
    return {
        "uuid": _uuid(raw.get("uuid"), "uuid"),
        "session": _uuid(raw.get("session"), "session"),
        "seq": _int(raw.get("seq"), "seq"),
        "type": raw["type"],
        "image_id": _int(raw.get("image_id"), "image_id", 1),
        "model_version_id": None if mv is None else _int(mv, "model_version_id", 1),
        "client_ts": _num(raw.get("client_ts"), "client_ts", 0),
        "decoder_ms": None if decoder_ms is None else _num(decoder_ms, "decoder_ms", 0, 3.6e6),
        "payload": payload,
    }


def _check_point(p: dict[str, Any], image: Image) -> None:
    _num(p.get("x"), "x", 0, image.width)
    _num(p.get("y"), "y", 0, image.height)


def _check_payload(session: Session, kind: str, p: dict[str, Any], image: Image) -> None:
    if kind == "click":
        _check_point(p, image)
        if p.get("label") not in (0, 1):
            raise EventError("click 'label' must be 1 (positive) or 0 (negative)")
    elif kind == "box":
        for key, limit in (
            ("x0", image.width),
            ("y0", image.height),
            ("x1", image.width),
            ("y1", image.height),
        ):
            _num(p.get(key), key, 0, limit)
    elif kind in ("stroke", "erase"):
        _num(p.get("radius"), "radius", 0.5, 1000)
        path = p.get("path")
        if not isinstance(path, list) or not path or len(path) > 100_000:
            raise EventError("'path' must be a non-empty list of [x, y] points")
        for pt in path:
            if not isinstance(pt, list) or len(pt) != 2:
                raise EventError("'path' must be a non-empty list of [x, y] points")
            _check_point({"x": pt[0], "y": pt[1]}, image)
    elif kind == "multimask_choice":
        _int(p.get("index"), "index", 1, 3)
    elif kind in ("delete", "category_change", "hide", "show", "select"):
        _mask_of_image(session, p.get("mask_id"), image)
        if kind == "category_change":
            _category_of_project(session, p.get("category_id"), image)


def _mask_of_image(session: Session, mask_id: Any, image: Image) -> Mask:
    mask = session.get(Mask, _int(mask_id, "mask_id", 1))
    if mask is None or mask.image_id != image.id:
        raise EventError(f"mask {mask_id} is not a mask of image {image.id}")
    return mask


def _category_of_project(session: Session, category_id: Any, image: Image) -> Category:
    cat = session.get(Category, _int(category_id, "category_id", 1))
    if cat is None or cat.project_id != image.project_id:
        raise EventError(f"category {category_id} is not a category of this project")
    return cat


def _annotation_session(session: Session, user: User, ev: dict[str, Any], image: Image) -> AnnotationSession:
    ann = session.scalars(
        select(AnnotationSession).where(AnnotationSession.client_id == ev["session"])
    ).first()
    if ann is None:
        mv = ev["model_version_id"]
        if mv is not None and session.get(ModelVersion, mv) is None:
            raise EventError(f"unknown model version {mv}")
        ann = AnnotationSession(
            client_id=ev["session"],
            user_id=user.id,
            project_id=image.project_id,
            image_id=image.id,
            model_version_id=mv,
        )
        session.add(ann)
        session.flush()
    elif ann.user_id != user.id or ann.image_id != image.id:
        raise EventError("this session belongs to another user or image")
    ann.last_event_at = utcnow()
    return ann


def _apply(
    session: Session, user: User, ev: dict[str, Any], image: Image, ann: AnnotationSession
) -> Mask | None:
    p = ev["payload"]
    if ev["type"] == "accept":
        cat = _category_of_project(session, p.get("category_id"), image)
        rle = rlelib.normalise(p.get("rle"), image.height, image.width)
        area, bbox = rlelib.area_and_bbox(rle)
        if area == 0:
            raise EventError("an accepted mask cannot be empty")
        mask = Mask(
            client_uuid=_uuid(p.get("mask_uuid"), "mask_uuid"),
            image_id=image.id,
            category_id=cat.id,
            rle_counts=rle["counts"],
            bbox=bbox,
            area=area,
            status=MaskStatus.accepted.value,
            source="annotator",
            author_id=user.id,
            session_id=ann.id,
            model_version_id=ann.model_version_id,
            active_ms=_int(p.get("active_ms", 0), "active_ms", 0, 2**40),
            clicks=_int(p.get("clicks", 0), "clicks"),
            strokes=_int(p.get("strokes", 0), "strokes"),
        )
        session.add(mask)
        return mask
    if ev["type"] == "delete":
        mask = _mask_of_image(session, p["mask_id"], image)
        mask.status = MaskStatus.deleted.value
        return mask
    if ev["type"] == "category_change":
        mask = _mask_of_image(session, p["mask_id"], image)
        mask.category_id = int(p["category_id"])
        return mask
    return None


def record_event(session: Session, user: User, raw: Any) -> dict[str, Any]:
    """Store one event exactly once and return its ack; raises EventError or AccessDenied.

    The ack is returned only after the commit. A UUID seen before is acknowledged as a
    duplicate and changes nothing.
    """
    ev = validate_envelope(raw)
    existing = session.scalars(select(Event).where(Event.uuid == ev["uuid"])).first()
    if existing is not None:
        return {"ok": True, "uuid": ev["uuid"], "duplicate": True, "mask_id": existing.mask_id}
    image = session.get(Image, ev["image_id"])
    if image is None:
        raise EventError(f"no image {ev['image_id']}")
    require(session, user, "annotate", image.project_id)
    try:
        _check_payload(session, ev["type"], ev["payload"], image)
        ann = _annotation_session(session, user, ev, image)
        mask = _apply(session, user, ev, image, ann)
        session.flush()
        event = Event(
            uuid=ev["uuid"],
            session_id=ann.id,
            seq=ev["seq"],
            type=ev["type"],
            payload=ev["payload"],
            image_id=image.id,
            user_id=user.id,
            mask_id=mask.id if mask else None,
            client_ts=ev["client_ts"],
            decoder_ms=ev["decoder_ms"],
        )
        session.add(event)
        if image.status == ImageStatus.new.value:
            image.status = ImageStatus.in_progress.value
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        existing = session.scalars(select(Event).where(Event.uuid == ev["uuid"])).first()
        if existing is not None:
            return {"ok": True, "uuid": ev["uuid"], "duplicate": True, "mask_id": existing.mask_id}
        raise EventError("conflicts with stored data (a mask UUID used twice?)") from exc
    except (EventError, AccessDenied, rlelib.RLEError):
        session.rollback()
        raise
    ack: dict[str, Any] = {"ok": True, "uuid": ev["uuid"], "duplicate": False}
    if mask is not None:
        ack["mask_id"] = mask.id
    return ack
