"""The event log: validate an event, store it exactly once, apply what it means.

What an event changes besides its own row: accept creates a mask (and, with "replaces", marks
the mask it is a new version of deleted, in the same transaction); delete and category_change
change a mask; undo/redo of an accept, delete or category_change (payload "target": the event's
uuid) reverse or redo that change. Every event also updates its annotation session's active
time (session_active_ms). Masks are referred to by "mask_uuid" (the client's UUID of a mask made
in the annotate page) or "mask_id".
"""

from __future__ import annotations

import json
import math
import uuid as uuidlib
from typing import Any

from sqlalchemy import Float, func, literal, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import rle as rlelib
from .access import AccessDenied, require
from .db import write_lock
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
        "draft_restore",
    }
)
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
IDLE_GAP_MS = 30_000  # gaps between a session's events longer than this are idle time
MASK_EVENTS = frozenset({"delete", "category_change", "hide", "show", "select"})


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


def _optional_uuid(p: dict[str, Any], key: str) -> None:
    if p.get(key) is not None:
        _uuid(p[key], key)


def _check_ref(ref: Any, field: str) -> None:
    """A mask reference: {"mask_uuid": uuid} or {"mask_id": int}."""
    if not isinstance(ref, dict):
        raise EventError(f"'{field}' must refer to a mask by mask_uuid or mask_id")
    if ref.get("mask_uuid") is not None:
        _uuid(ref["mask_uuid"], "mask_uuid")
    else:
        _int(ref.get("mask_id"), "mask_id", 1)


def _check_accept(p: dict[str, Any]) -> None:
    if p.get("replaces") is not None:
        _check_ref(p["replaces"], "replaces")
    if not isinstance(p.get("overlap", False), bool):
        raise EventError("'overlap' must be true or false")
    clip = p.get("clip", [])
    if not isinstance(clip, list) or len(clip) > 10_000:
        raise EventError("'clip' must be a list of mask references")
    for ref in clip:
        _check_ref(ref, "clip")


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
        if p["x0"] > p["x1"] or p["y0"] > p["y1"]:
            raise EventError("a box needs x0 <= x1 and y0 <= y1")
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
        _optional_uuid(p, "target")
    elif kind in ("undo", "redo"):
        _optional_uuid(p, "target")
    elif kind == "accept":
        _check_accept(p)
    elif kind in MASK_EVENTS:
        _mask_of_image(session, p, image)
        if kind == "category_change":
            _category_of_project(session, p.get("category_id"), image)
    elif kind == "skip" and not isinstance(p.get("reason", ""), str):
        raise EventError("'reason' must be text")
    elif kind == "draft_restore":
        _uuid(p.get("from_session"), "from_session")
        _int(p.get("from_seq"), "from_seq")
        entries = p.get("entries", [])
        if not isinstance(entries, list) or len(entries) > 100_000:
            raise EventError("'entries' must be a list of event UUIDs")
        for e in entries:
            _uuid(e, "entries")


def _mask_of_image(session: Session, ref: Any, image: Image) -> Mask:
    """The mask a reference ({"mask_uuid"} or {"mask_id"}) names; it must belong to `image`."""
    _check_ref(ref, "mask")
    if ref.get("mask_uuid") is not None:
        uid = _uuid(ref["mask_uuid"], "mask_uuid")
        mask = session.scalars(select(Mask).where(Mask.client_uuid == uid)).first()
        name = uid
    else:
        mask = session.get(Mask, ref["mask_id"])
        name = ref["mask_id"]
    if mask is None or mask.image_id != image.id:
        raise EventError(f"mask {name} is not a mask of image {image.id}")
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


def _apply_history(session: Session, ev: dict[str, Any], image: Image) -> Mask | None:
    """Undo or redo of an accept, delete or category_change: reverse or repeat its change."""
    target_uuid = ev["payload"].get("target")
    if target_uuid is None:
        return None
    target = session.scalars(select(Event).where(Event.uuid == _uuid(target_uuid, "target"))).first()
    if target is None:  # an event the server refused: logged, nothing to reverse
        return None
    if target.image_id != image.id:
        raise EventError(f"{ev['type']} of event {target_uuid}, not an event of image {image.id}")
    if target.type not in ("accept", "delete", "category_change") or target.mask_id is None:
        return None
    undo = ev["type"] == "undo"
    mask = session.get(Mask, target.mask_id)
    accepted, deleted = MaskStatus.accepted.value, MaskStatus.deleted.value
    if target.type == "accept":
        mask.status = deleted if undo else accepted
        if target.payload.get("replaces"):
            old = _mask_of_image(session, target.payload["replaces"], image)
            old.status = accepted if undo else deleted
    elif target.type == "delete":
        mask.status = accepted if undo else deleted
    else:
        key = "from_category_id" if undo else "category_id"
        mask.category_id = int(target.payload[key])
    return mask


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
        if p.get("replaces") is not None:  # a new version of a mask: the old one is retired
            _mask_of_image(session, p["replaces"], image).status = MaskStatus.deleted.value
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
    if ev["type"] in ("undo", "redo"):
        return _apply_history(session, ev, image)
    if ev["type"] not in MASK_EVENTS:
        return None
    mask = _mask_of_image(session, p, image)
    if ev["type"] == "delete":
        mask.status = MaskStatus.deleted.value
    elif ev["type"] == "category_change":
        p["from_category_id"] = mask.category_id  # what an undo restores
        mask.category_id = int(p["category_id"])
    return mask


def session_active_ms(timestamps: list[float], idle_gap_ms: float = IDLE_GAP_MS) -> int:
    """Active time of a session from its events' client timestamps (ms): the sum of the gaps
    between consecutive events, leaving out gaps longer than `idle_gap_ms`."""
    ts = sorted(timestamps)
    return int(round(sum(b - a for a, b in zip(ts, ts[1:], strict=False) if b - a <= idle_gap_ms)))


def image_active_ms(session: Session, image_id: int) -> int:
    """An image's total active time: the sum over its annotation sessions (page loads)."""
    rows = session.scalars(select(AnnotationSession.active_ms).where(AnnotationSession.image_id == image_id))
    return int(sum(rows))


def _update_active_time(session: Session, ann: AnnotationSession, client_ts: float) -> None:
    """`session_active_ms` of the session's stored timestamps and `client_ts`, computed in SQL
    (one query, no rows fetched: a session's events are not loaded for each new one)."""
    ts = union_all(
        select(Event.client_ts.label("ts")).where(Event.session_id == ann.id),
        select(literal(client_ts, Float).label("ts")),
    ).subquery()
    gaps = select((ts.c.ts - func.lag(ts.c.ts).over(order_by=ts.c.ts)).label("gap")).subquery()
    total = session.scalar(select(func.sum(gaps.c.gap)).where(gaps.c.gap <= IDLE_GAP_MS))
    ann.active_ms = int(round(total or 0))


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
    with write_lock(session):
        return _store(session, user, ev, image)


def _store(session: Session, user: User, ev: dict[str, Any], image: Image) -> dict[str, Any]:
    """Validate the payload against the image, apply the event and commit it; its ack."""
    try:
        _check_payload(session, ev["type"], ev["payload"], image)
        ann = _annotation_session(session, user, ev, image)
        mask = _apply(session, user, ev, image, ann)
        _update_active_time(session, ann, ev["client_ts"])
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
