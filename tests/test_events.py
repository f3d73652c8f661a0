"""The event log on SQLite and PostgreSQL: exactly once, validated, nothing half-written."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from annotator_backend import rle
from annotator_backend.access import AccessDenied
from annotator_backend.accounts import find_user
from annotator_backend.events import EventError, record_event
from annotator_backend.models import Event, Mask

from .fixtures_world import build_world


@pytest.fixture
def world(session, settings, tmp_path: Path):  # noqa: ANN001, ANN201
    return build_world(session, settings, tmp_path)


def event(world, kind: str, payload: dict, session_id: str, seq: int, **extra) -> dict:  # noqa: ANN001
    return {
        "uuid": str(uuid.uuid4()),
        "session": session_id,
        "seq": seq,
        "type": kind,
        "image_id": world.image.id,
        "model_version_id": world.version.id,
        "client_ts": time.time() * 1000,
        "decoder_ms": 12.5,
        "payload": payload,
        **extra,
    }


def counts(session) -> tuple[int, int]:  # noqa: ANN001
    return (
        session.scalar(select(func.count()).select_from(Event)),
        session.scalar(select(func.count()).select_from(Mask)),
    )


def test_click_and_accept_are_stored_once(session, world) -> None:  # noqa: ANN001
    user = find_user(session, "ann")
    sid = str(uuid.uuid4())
    click = event(world, "click", {"x": 10.5, "y": 20.25, "label": 1}, sid, 0)
    ack = record_event(session, user, click)
    assert ack == {"ok": True, "uuid": click["uuid"], "duplicate": False}
    assert record_event(session, user, dict(click))["duplicate"] is True

    mask = np.zeros((48, 64), bool)
    mask[10:30, 5:40] = True
    accept = event(
        world,
        "accept",
        {
            "mask_uuid": str(uuid.uuid4()),
            "category_id": world.category_ids[1],
            "rle": rle.encode(mask),
            "active_ms": 4200,
            "clicks": 1,
            "strokes": 0,
        },
        sid,
        1,
    )
    ack = record_event(session, user, accept)
    assert ack["ok"] and not ack["duplicate"] and ack["mask_id"]
    again = record_event(session, user, accept)
    assert again["duplicate"] and again["mask_id"] == ack["mask_id"]
    assert counts(session) == (2, 1)
    stored = session.get(Mask, ack["mask_id"])
    assert stored.area == int(mask.sum()) and stored.active_ms == 4200 and stored.author_id == user.id
    assert np.array_equal(rle.decode({"size": [48, 64], "counts": stored.rle_counts}), mask)
    ev = session.scalars(select(Event).where(Event.type == "click")).one()
    assert (ev.payload["x"], ev.payload["y"], ev.decoder_ms) == (10.5, 20.25, 12.5)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(uuid="nope"),
        lambda e: e.update(type="explode"),
        lambda e: e.update(seq=-1),
        lambda e: e.update(client_ts="yesterday"),
        lambda e: e.update(payload={"x": 1e9, "y": 1, "label": 1}),
        lambda e: e.update(payload={"x": 1, "y": 1, "label": 7}),
        lambda e: e.update(payload=[1, 2]),
        lambda e: e.update(image_id=999_999),
    ],
    ids=["uuid", "type", "seq", "client_ts", "x-outside", "label", "payload", "image"],
)
def test_malformed_events_change_nothing(session, world, mutate) -> None:  # noqa: ANN001
    user = find_user(session, "ann")
    raw = event(world, "click", {"x": 1, "y": 1, "label": 1}, str(uuid.uuid4()), 0)
    mutate(raw)
    with pytest.raises(EventError):
        record_event(session, user, raw)
    assert counts(session) == (0, 0)


def test_bad_rle_in_accept_changes_nothing(session, world) -> None:  # noqa: ANN001
    user = find_user(session, "ann")
    sid = str(uuid.uuid4())
    bad = event(
        world,
        "accept",
        {
            "mask_uuid": str(uuid.uuid4()),
            "category_id": world.category_ids[0],
            "rle": {"size": [48, 64], "counts": [100, 20]},
            "active_ms": 1,
        },
        sid,
        0,
    )
    with pytest.raises(rle.RLEError):
        record_event(session, user, bad)
    assert counts(session) == (0, 0)


def test_non_member_annotator_is_refused(session, world) -> None:  # noqa: ANN001
    outsider = find_user(session, "outsider")
    raw = event(world, "click", {"x": 1, "y": 1, "label": 1}, str(uuid.uuid4()), 0)
    with pytest.raises(AccessDenied):
        record_event(session, outsider, raw)
    assert counts(session) == (0, 0)


def test_session_cannot_be_hijacked(session, world) -> None:  # noqa: ANN001
    sid = str(uuid.uuid4())
    record_event(
        session, find_user(session, "ann"), event(world, "click", {"x": 1, "y": 1, "label": 1}, sid, 0)
    )
    with pytest.raises(EventError, match="another user"):
        record_event(session, find_user(session, "boss"), event(world, "clear", {}, sid, 1))
    assert counts(session) == (1, 0)
