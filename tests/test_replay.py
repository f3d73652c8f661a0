"""Replay (annotator_backend.replay): recorded sessions give the stored masks back.

Sessions are recorded through `record_event` (the path the Socket.IO handler takes) with the
masks computed independently of replay.py: strokes by a per-pixel loop over the written
definition, model masks by decoding.OnnxDecoder.predict with the previous logits. The browser
tests replay sessions recorded in Chromium as well (tests/browser/test_tools.py).
"""

from __future__ import annotations

import math
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from annotator_backend import rle
from annotator_backend.accounts import find_user
from annotator_backend.decoding import OnnxDecoder, Prompt, mask_from_logits
from annotator_backend.embeddings import save_embedding
from annotator_backend.events import record_event
from annotator_backend.models import Embedding, Mask
from annotator_backend.onnx_export import export_decoder
from annotator_backend.replay import (
    ReplayError,
    accepted_masks,
    mask_input_from_binary,
    paint_stroke,
    replay_image,
)

from .fixtures_world import build_world

W, H = 64, 48


@pytest.fixture(scope="module")
def decoder_file(vit_b_model, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    return export_decoder(vit_b_model, tmp_path_factory.mktemp("replay-onnx") / "decoder.onnx")


@pytest.fixture
def world(session, settings, tmp_path: Path, decoder_file: Path):  # noqa: ANN001, ANN201
    w = build_world(session, settings, tmp_path, W, H)
    shutil.copyfile(decoder_file, w.version.onnx_path)
    emb = session.scalars(select(Embedding)).one()
    embedding = np.random.default_rng(3).standard_normal((1, 256, 64, 64)).astype(np.float32)
    save_embedding(Path(emb.path), embedding)
    w.embedding = embedding
    w.decoder = OnnxDecoder(decoder_file)
    return w


class Recorder:
    """One annotation session: events through record_event, seq and timestamps in order."""

    def __init__(self, session, world, user: str = "ann") -> None:  # noqa: ANN001
        self.session, self.world = session, world
        self.user = find_user(session, user)
        self.id = str(uuid.uuid4())
        self.seq = 0
        self.t = time.time() * 1000

    def __call__(self, kind: str, payload: dict | None = None) -> str:
        self.t += 700
        ev = {
            "uuid": str(uuid.uuid4()),
            "session": self.id,
            "seq": self.seq,
            "type": kind,
            "image_id": self.world.image.id,
            "model_version_id": self.world.version.id,
            "client_ts": self.t,
            "payload": payload or {},
        }
        self.seq += 1
        ack = record_event(self.session, self.user, ev)
        assert ack["ok"], ack
        return ev["uuid"]

    def accept(self, mask: np.ndarray, **extra) -> str:  # noqa: ANN003
        mask_uuid = str(uuid.uuid4())
        payload = {"mask_uuid": mask_uuid, "category_id": self.world.category_ids[0], "rle": rle.encode(mask)}
        self("accept", payload | extra)
        return mask_uuid


def reference_stroke(mask: np.ndarray, path: list, radius: float, value: int) -> None:
    """The written definition, pixel by pixel over the whole image: a pixel belongs to the
    stroke when its centre is within `radius` of the polyline (a single point: a disc)."""
    segments = list(zip(path, path[1:], strict=False)) or [(path[0], path[0])]
    for j in range(mask.shape[0]):
        for i in range(mask.shape[1]):
            cx, cy = i + 0.5, j + 0.5
            for (ax, ay), (bx, by) in segments:
                dx, dy = bx - ax, by - ay
                length2 = dx * dx + dy * dy
                t = 0.0 if length2 == 0 else min(1.0, max(0.0, ((cx - ax) * dx + (cy - ay) * dy) / length2))
                if math.hypot(ax + t * dx - cx, ay + t * dy - cy) <= radius:
                    mask[j, i] = value
                    break


def strokes_mask(strokes: list[tuple[str, list, float]], start: np.ndarray | None = None) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8) if start is None else start.astype(np.uint8)
    for kind, path, radius in strokes:
        reference_stroke(mask, path, radius, 0 if kind == "erase" else 1)
    return mask.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_stroke_rasterisation_follows_its_definition() -> None:
    m = np.zeros((6, 6), np.uint8)
    paint_stroke(m, [[2, 2]], 1, 1)  # centres (1.5|2.5, 1.5|2.5) are within 1 of (2, 2)
    assert [list(a) for a in m.nonzero()] == [[1, 1, 2, 2], [1, 2, 1, 2]]
    rng = np.random.default_rng(11)
    for _ in range(6):
        path = (rng.random((int(rng.integers(1, 5)), 2)) * [W + 20, H + 20] - 10).round(2).tolist()
        radius = float(rng.integers(1, 9)) + 0.5 * float(rng.integers(0, 2))
        got = np.zeros((H, W), np.uint8)
        paint_stroke(got, path, radius, 1)
        assert np.array_equal(got.astype(bool), strokes_mask([("stroke", path, radius)])), (path, radius)


def test_mask_input_from_binary_marks_the_mask_and_the_padding() -> None:
    mask = np.zeros((H, W), bool)
    mask[:, : W // 2] = True
    logits = mask_input_from_binary(mask)
    assert logits.shape == (256, 256) and logits.dtype == np.float32
    assert logits[10, 10] == 10 and logits[10, 200] == -10  # left half in, right half out
    assert (logits[200:, :] == -10).all()  # below the 64x48 image's 256x192 part: padding


def test_strokes_only_session_replays_exactly(session, world) -> None:  # noqa: ANN001
    rec = Recorder(session, world)
    s1 = ("stroke", [[5.25, 5.5], [30.75, 20.0], [40.0, 40.5]], 4)
    s2 = ("erase", [[20.0, 14.0], [24.5, 16.0]], 3)
    s3 = ("stroke", [[50.0, 8.0]], 6)
    rec("image_open", {"via": "next"})
    for kind, path, radius in (s1, s2, s3):
        rec(kind, {"path": path, "radius": radius})
    target = rec("stroke", {"path": [[1.0, 1.0], [60.0, 45.0]], "radius": 9})
    rec("undo", {"target": target, "type": "stroke"})  # undone: not part of the mask
    mask_uuid = rec.accept(strokes_mask([s1, s2, s3]), strokes=3)
    replayed = replay_image(session, world.image.id)
    assert set(replayed) == {mask_uuid}
    got = replayed[mask_uuid]
    assert got.status == "accepted" and not got.used_model
    stored = session.scalars(select(Mask)).one()
    assert np.array_equal(got.mask, rle.decode({"size": [H, W], "counts": stored.rle_counts}))


def predict_chain(world, steps: list[Prompt], overrides: dict[int, int] | None = None) -> np.ndarray:  # noqa: ANN001
    """Logits of the last step, each step fed the chosen logits of the one before."""
    prev = None
    for k, prompt in enumerate(steps):
        coords, labels = prompt.model_inputs(W, H)
        masks, iou_pred = world.decoder.decode(world.embedding, coords, labels, prev)
        idx = 1 + int(np.argmax(iou_pred[1:])) if prompt.uses_multimask and prev is None else 0
        prev = masks[(overrides or {}).get(k, idx)]
    return prev


def test_model_session_replays(session, world) -> None:  # noqa: ANN001
    """Clicks, a candidate choice, a box, strokes and an overlap clip, replayed through the
    same decoder and embedding."""
    rec = Recorder(session, world)
    first = rec("click", {"x": 30.5, "y": 20.25, "label": 1})
    rec("multimask_choice", {"index": 3, "target": first})
    rec("click", {"x": 10.0, "y": 40.0, "label": 0})
    rec("box", {"x0": 8.0, "y0": 6.0, "x1": 50.0, "y1": 40.0})
    stroke = ("stroke", [[2.0, 2.0], [12.0, 3.0]], 2)
    rec("stroke", {"path": stroke[1], "radius": stroke[2]})
    steps = [
        Prompt([(30.5, 20.25)], [1]),
        Prompt([(30.5, 20.25), (10.0, 40.0)], [1, 0]),
        Prompt([(30.5, 20.25), (10.0, 40.0)], [1, 0], box=(8.0, 6.0, 50.0, 40.0)),
    ]
    model = mask_from_logits(predict_chain(world, steps, {0: 3}), W, H)
    first_mask = strokes_mask([stroke], model)
    first_uuid = rec.accept(first_mask, overlap=True)

    rec("click", {"x": 40.0, "y": 30.0, "label": 1})
    second = mask_from_logits(predict_chain(world, [Prompt([(40.0, 30.0)], [1])]), W, H) & ~first_mask
    second_uuid = rec.accept(second, clip=[{"mask_uuid": first_uuid}]) if second.any() else None

    replayed = replay_image(session, world.image.id)
    assert replayed[first_uuid].used_model
    assert iou(replayed[first_uuid].mask, first_mask) >= 0.99
    if second_uuid:
        assert iou(replayed[second_uuid].mask, second) >= 0.99
    for m in session.scalars(select(Mask)):
        stored = rle.decode({"size": [H, W], "counts": m.rle_counts})
        assert iou(replayed[m.client_uuid].mask, stored) >= 0.99


def test_edit_delete_undo_and_reload(session, world) -> None:  # noqa: ANN001
    """Statuses after delete, undo, redo and an edit that replaces a mask, and a draft carried
    over a reload (draft_restore) into a new session."""
    rec = Recorder(session, world)
    dot_a, dot_b = ("stroke", [[10.0, 10.0]], 5), ("stroke", [[40.0, 30.0]], 6)
    a, b = strokes_mask([dot_a]), strokes_mask([dot_b])
    rec("stroke", {"path": dot_a[1], "radius": dot_a[2]})
    uuid_a = rec.accept(a)
    rec("stroke", {"path": dot_b[1], "radius": dot_b[2]})
    uuid_b = rec.accept(b)
    delete_a = rec("delete", {"mask_uuid": uuid_a})
    rec("undo", {"target": delete_a, "type": "delete"})
    rec("redo", {"target": delete_a, "type": "delete"})
    rec("select", {"mask_uuid": uuid_b, "category_id": world.category_ids[0]})
    grow = ("stroke", [[40.0, 30.0], [55.0, 30.0]], 3)
    rec("stroke", {"path": grow[1], "radius": grow[2]})
    # reload: the new page's session restores the draft (select + stroke), adds an eraser stroke
    again = Recorder(session, world)
    again("image_open", {"via": "reload"})
    again("draft_restore", {"from_session": rec.id, "from_seq": rec.seq - 1})
    cut = ("erase", [[38.0, 25.0]], 2)
    again("erase", {"path": cut[1], "radius": cut[2]})
    edited = strokes_mask([grow, cut], b)
    uuid_c = again.accept(edited, replaces={"mask_uuid": uuid_b})

    statuses = {m.client_uuid: m.status for m in session.scalars(select(Mask))}
    assert statuses == {uuid_a: "deleted", uuid_b: "deleted", uuid_c: "accepted"}
    replayed = replay_image(session, world.image.id)
    assert {u: m.status for u, m in replayed.items()} == statuses
    assert np.array_equal(replayed[uuid_c].mask, edited)
    assert set(accepted_masks(session, world.image.id)) == {uuid_c}
    for u, m in replayed.items():
        if u != uuid_c:
            assert np.array_equal(m.mask, {uuid_a: a, uuid_b: b}[u])

    again("undo", {"target": _event_of(session, uuid_c), "type": "accept"})
    session.expire_all()
    statuses = {m.client_uuid: m.status for m in session.scalars(select(Mask))}
    assert statuses == {uuid_a: "deleted", uuid_b: "accepted", uuid_c: "deleted"}
    assert {u: m.status for u, m in replay_image(session, world.image.id).items()} == statuses


def _event_of(session, mask_uuid: str) -> str:  # noqa: ANN001
    from annotator_backend.models import Event

    mask = session.scalars(select(Mask).where(Mask.client_uuid == mask_uuid)).one()
    return session.scalars(select(Event.uuid).where(Event.mask_id == mask.id, Event.type == "accept")).one()


def test_a_broken_log_is_reported(session, world) -> None:  # noqa: ANN001
    rec = Recorder(session, world)
    rec("undo", {})  # nothing to undo
    with pytest.raises(ReplayError, match="nothing to undo"):
        replay_image(session, world.image.id)
