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
from annotator_backend.events import EventError, image_active_ms, record_event
from annotator_backend.images import add_image
from annotator_backend.models import Event, Mask

from .conftest import write_image
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


def _accept(world, sid: str, seq: int, mask: np.ndarray, **extra) -> dict:  # noqa: ANN001, ANN003
    payload = {"mask_uuid": str(uuid.uuid4()), "category_id": world.category_ids[0], "rle": rle.encode(mask)}
    return event(world, "accept", payload | extra, sid, seq)


def _square(x: int, y: int, size: int = 10) -> np.ndarray:
    m = np.zeros((48, 64), bool)
    m[y : y + size, x : x + size] = True
    return m


def test_masks_by_uuid_replaces_and_undo_redo(session, settings, world, tmp_path: Path) -> None:  # noqa: ANN001
    """Masks are named by their client UUID; an accept that replaces a mask retires it in the
    same transaction; undo/redo of accept, delete and category_change reverse and repeat them."""
    user = find_user(session, "ann")
    sid = str(uuid.uuid4())
    first = _accept(world, sid, 0, _square(2, 2))
    record_event(session, user, first)
    ref = {"mask_uuid": first["payload"]["mask_uuid"]}
    second = _accept(world, sid, 1, _square(2, 2, 14), replaces=ref, clip=[], overlap=False)
    record_event(session, user, second)
    old, new = session.scalars(select(Mask).order_by(Mask.id)).all()
    assert (old.status, new.status) == ("deleted", "accepted")
    undo = event(world, "undo", {"target": second["uuid"], "type": "accept"}, sid, 2)
    assert record_event(session, user, undo)["mask_id"] == new.id
    session.refresh(old), session.refresh(new)
    assert (old.status, new.status) == ("accepted", "deleted")
    record_event(session, user, event(world, "redo", {"target": second["uuid"]}, sid, 3))
    session.refresh(old), session.refresh(new)
    assert (old.status, new.status) == ("deleted", "accepted")

    new_ref = {"mask_uuid": second["payload"]["mask_uuid"]}
    change = event(world, "category_change", new_ref | {"category_id": world.category_ids[1]}, sid, 4)
    record_event(session, user, change)
    stored = session.scalars(select(Event).where(Event.uuid == change["uuid"])).one()
    assert stored.payload["from_category_id"] == world.category_ids[0]
    record_event(session, user, event(world, "undo", {"target": change["uuid"]}, sid, 5))
    session.refresh(new)
    assert new.category_id == world.category_ids[0]
    delete = event(world, "delete", {"mask_id": new.id}, sid, 6)
    record_event(session, user, delete)
    session.refresh(new)
    assert new.status == "deleted"
    record_event(session, user, event(world, "undo", {"target": delete["uuid"]}, sid, 7))
    session.refresh(new)
    assert new.status == "accepted"
    # an undo of an event the server never stored (it refused it) is logged and changes nothing
    assert record_event(session, user, event(world, "undo", {"target": str(uuid.uuid4())}, sid, 8))["ok"]
    assert counts(session) == (9, 2)
    second = add_image(
        session,
        settings,
        world.project,
        write_image(tmp_path / "b.png", 64, 48, seed=9).read_bytes(),
        "b.png",
    )
    session.commit()
    elsewhere = event(world, "undo", {"target": delete["uuid"]}, str(uuid.uuid4()), 0, image_id=second.id)
    with pytest.raises(EventError, match="not an event of image"):
        record_event(session, user, elsewhere)


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("box", {"x0": 30, "y0": 5, "x1": 10, "y1": 20}),
        ("delete", {"mask_uuid": str(uuid.uuid4())}),
        ("hide", {"mask_id": 999_999}),
        ("select", {}),
        ("undo", {"target": "not-a-uuid"}),
        ("multimask_choice", {"index": 2, "target": 5}),
        ("draft_restore", {"from_session": "x", "from_seq": 1}),
        ("draft_restore", {"from_session": str(uuid.uuid4()), "from_seq": -1}),
        ("accept", {"replaces": {"mask_uuid": str(uuid.uuid4())}}),
        ("accept", {"clip": [{"mask_id": "seven"}]}),
        ("accept", {"overlap": "yes"}),
    ],
    ids=[
        "box-order",
        "unknown-mask-uuid",
        "unknown-mask-id",
        "select-without-mask",
        "undo-target-format",
        "choice-target",
        "restore-session",
        "restore-seq",
        "replaces-unknown",
        "clip-ref",
        "overlap-type",
    ],
)
def test_new_payloads_are_validated(session, world, kind: str, payload: dict) -> None:  # noqa: ANN001
    user = find_user(session, "ann")
    if kind == "accept":
        raw = _accept(world, str(uuid.uuid4()), 0, _square(1, 1), **payload)
    else:
        raw = event(world, kind, payload, str(uuid.uuid4()), 0)
    with pytest.raises(EventError):
        record_event(session, user, raw)
    assert counts(session) == (0, 0)


def test_session_active_time_leaves_out_idle_gaps(session, world) -> None:  # noqa: ANN001
    """The session's active time sums the gaps between its events, leaving out those over 30 s,
    whatever order the events arrive in."""
    from annotator_backend.models import AnnotationSession

    user = find_user(session, "ann")
    sid = str(uuid.uuid4())
    t0 = 1.7e12
    times = [t0, t0 + 1000, t0 + 41000, t0 + 43500]  # 1 s, 40 s (idle), 2.5 s
    for seq in (0, 3, 1, 2):  # out of order on purpose
        ev = event(world, "click", {"x": 1, "y": 1, "label": 1}, sid, seq, client_ts=times[seq])
        record_event(session, user, ev)
    ann = session.scalars(select(AnnotationSession).where(AnnotationSession.client_id == sid)).one()
    assert ann.active_ms == 3500
    other = str(uuid.uuid4())  # a reload: a second session on the same image
    for seq, t in enumerate((t0 + 60000, t0 + 62000)):
        record_event(session, user, event(world, "clear", {}, other, seq, client_ts=t))
    assert image_active_ms(session, world.image.id) == 5500
