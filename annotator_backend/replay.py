"""Rebuild an image's accepted masks from its event log and the model version each session used.

The same rules as the annotate page (static/js/draft.js, prompts.js, strokes.js, composite.js):

* a session's events, in seq order, build a history: click, box, stroke, erase,
  multimask_choice, clear, select (reopen a mask for editing), accept, delete (of the mask being
  edited: resets the draft), category_change; undo pops the last entry onto a redo stack, redo
  pushes it back, any new entry empties the redo stack; draft_restore continues the draft that
  another session had after its event `from_seq` (a reload);
* the draft is a fold over the entries since the last reset (clear, accept, select, delete of
  the edited mask); its prompts decode in order, each with the chosen low-res logits of the
  previous prompt as mask_input (for the first prompt of a reopened mask: that mask, see
  `mask_input_from_binary`); a single positive point without box or mask_input uses the best of
  the multimask outputs 1..3 unless a multimask_choice picked another;
* the accepted mask is the model layer (the latest prompt's chosen logits upscaled and
  thresholded as `decoding.mask_from_logits`; with no prompt the reopened mask, or nothing), then
  the strokes in order (`paint_stroke`: brush 1, eraser 0), then minus the masks listed in the
  accept's "clip" (the overlap rule).

Which masks are accepted at the end follows the server's order of events (accept, delete,
replaces, undo/redo of those).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import rle as rlelib
from .decoding import LOW_RES, MODEL_SIZE, OnnxDecoder, Prompt, mask_from_logits, resized_size
from .edge_snap import Guide, image_guide
from .embeddings import load_embedding
from .images import image_file, load_rgb
from .model_registry import ensure_onnx
from .models import AnnotationSession, Embedding, Event, Image, Mask, ModelVersion

MASK_INPUT_LOGIT = 10.0
PROMPT_TYPES = frozenset({"click", "box"})
STROKE_TYPES = frozenset({"stroke", "erase"})
DRAFT_TYPES = frozenset({"click", "box", "stroke", "erase", "multimask_choice", "select"})
HISTORY_TYPES = DRAFT_TYPES | {"clear", "accept", "delete", "category_change"}


class ReplayError(RuntimeError):
    """The log cannot be replayed (missing embedding, undo of nothing, unknown session)."""


# --- pixel rules shared with the browser ---------------------------------------------------------


def paint_segment(
    mask: np.ndarray, a: tuple[float, float], b: tuple[float, float], r: float, value: int
) -> None:
    """Pixels whose centre is within `r` of segment a-b (a capsule) get `value` (strokes.js)."""
    h, w = mask.shape
    ax, ay = a
    bx, by = b
    i0 = max(0, math.floor(min(ax, bx) - r))
    i1 = min(w - 1, math.ceil(max(ax, bx) + r))
    j0 = max(0, math.floor(min(ay, by) - r))
    j1 = min(h - 1, math.ceil(max(ay, by) + r))
    if i0 > i1 or j0 > j1:
        return
    cx = np.arange(i0, i1 + 1, dtype=np.float64)[None, :] + 0.5
    cy = np.arange(j0, j1 + 1, dtype=np.float64)[:, None] + 0.5
    dx = bx - ax
    dy = by - ay
    length2 = dx * dx + dy * dy
    if length2 > 0:
        t = ((cx - ax) * dx + (cy - ay) * dy) / length2
        t = np.minimum(1.0, np.maximum(0.0, t))
    else:
        t = np.zeros((cy.shape[0], cx.shape[1]))
    ex = ax + t * dx - cx
    ey = ay + t * dy - cy
    inside = ex * ex + ey * ey <= r * r
    mask[j0 : j1 + 1, i0 : i1 + 1][inside] = value


def paint_stroke(mask: np.ndarray, path: list[list[float]], radius: float, value: int) -> None:
    """A stroke: a disc at every point plus a capsule between consecutive points."""
    points = [(float(x), float(y)) for x, y in path]
    if len(points) == 1:
        paint_segment(mask, points[0], points[0], float(radius), value)
    for a, b in zip(points, points[1:], strict=False):
        paint_segment(mask, a, b, float(radius), value)


def mask_input_from_binary(mask: np.ndarray) -> np.ndarray:
    """A binary image mask -> mask_input logits [256, 256] (masks.maskInputFromBinary)."""
    h, w = mask.shape
    rw, rh = resized_size(w, h)
    centre = (np.arange(LOW_RES, dtype=np.float64) + 0.5) * (MODEL_SIZE / LOW_RES)
    iy = np.minimum(h - 1, np.floor((centre * h) / rh)).astype(np.int64)
    ix = np.minimum(w - 1, np.floor((centre * w) / rw)).astype(np.int64)
    on = mask[iy[:, None], ix[None, :]] & (centre[None, :] < rw) & (centre[:, None] < rh)
    return np.where(on, MASK_INPUT_LOGIT, -MASK_INPUT_LOGIT).astype(np.float32)


# --- the history of a session (draft.js) -----------------------------------------------------------


@dataclass
class Entry:
    id: str
    type: str
    payload: dict[str, Any]
    reset: bool = False


@dataclass
class Draft:
    base: Entry | None
    prompts: list[tuple[Entry, list[tuple[float, float, int]], tuple | None]]
    strokes: list[tuple[str, list, float]]
    overrides: dict[str, int]


def _is_reset(e: Entry) -> bool:
    return e.type in ("clear", "accept", "select") or e.reset


@dataclass
class History:
    entries: list[Entry] = field(default_factory=list)
    redo_stack: list[Entry] = field(default_factory=list)

    def push(self, e: Entry) -> None:
        self.entries.append(e)
        self.redo_stack = []

    def window_start(self) -> int:
        i = len(self.entries) - 1
        while i >= 0 and not _is_reset(self.entries[i]):
            i -= 1
        return i + 1

    def draft(self) -> Draft:
        start = self.window_start()
        head = self.entries[start - 1] if start > 0 else None
        base = head if head is not None and head.type == "select" else None
        points: list[tuple[float, float, int]] = []
        box = None
        prompts, strokes, overrides = [], [], {}
        for e in self.entries[start:]:
            p = e.payload
            if e.type == "click":
                points.append((p["x"], p["y"], p["label"]))
            elif e.type == "box":
                box = (p["x0"], p["y0"], p["x1"], p["y1"])
            elif e.type in STROKE_TYPES:
                strokes.append((e.type, p["path"], p["radius"]))
            elif e.type == "multimask_choice":
                overrides[p.get("target")] = p["index"]
            if e.type in PROMPT_TYPES:
                prompts.append((e, list(points), box))
        return Draft(base, prompts, strokes, overrides)

    def draft_entries(self) -> list[Entry]:
        start = self.window_start()
        head = self.entries[start - 1] if start > 0 else None
        first = start - 1 if head is not None and head.type == "select" else start
        return [e for e in self.entries[first:] if e.type in DRAFT_TYPES]


def _ref_key(ref: dict[str, Any]) -> tuple[str, Any]:
    return ("uuid", ref["mask_uuid"]) if ref.get("mask_uuid") is not None else ("id", ref.get("mask_id"))


# --- replay ------------------------------------------------------------------------------------------


@dataclass
class ReplayedMask:
    mask_uuid: str
    event_uuid: str
    session: str
    category_id: int
    mask: np.ndarray  # bool [H, W]
    used_model: bool
    status: str = "accepted"


class ImageReplay:
    """Replays every session of one image."""

    def __init__(self, db: Session, image: Image, threads: int = 1, guide: Guide | None = None) -> None:
        self.db = db
        self.image = image
        self.threads = threads
        self.guide = guide
        rows = db.execute(
            select(Event, AnnotationSession.client_id, AnnotationSession.model_version_id)
            .join(AnnotationSession, AnnotationSession.id == Event.session_id)
            .where(Event.image_id == image.id)
            .order_by(Event.id)
        ).all()
        self.by_arrival = [r[0] for r in rows]
        self.sessions: dict[str, list[Event]] = {}
        self.model_of: dict[str, int | None] = {}
        self.client_of: dict[int, str] = {}
        for ev, client_id, mv in rows:
            self.sessions.setdefault(client_id, []).append(ev)
            self.model_of[client_id] = mv
            self.client_of[ev.session_id] = client_id
        for evs in self.sessions.values():
            evs.sort(key=lambda e: e.seq)
        self.decoded: dict[tuple[int | None, str], tuple[np.ndarray, np.ndarray, int]] = {}
        self.decoders: dict[int, tuple[OnnxDecoder, np.ndarray]] = {}
        self.stored: dict[tuple[str, Any], np.ndarray] = {}
        self.accepts: dict[str, ReplayedMask] = {}

    # stored masks, decoders ---------------------------------------------------------------------------
    def stored_mask(self, ref: dict[str, Any]) -> np.ndarray:
        key = _ref_key(ref)
        if key not in self.stored:
            where = Mask.client_uuid == key[1] if key[0] == "uuid" else Mask.id == key[1]
            m = self.db.scalars(select(Mask).where(where)).first()
            if m is None:
                raise ReplayError(f"mask {key[1]} is not stored")
            size = [self.image.height, self.image.width]
            self.stored[key] = rlelib.decode({"size": size, "counts": m.rle_counts})
        return self.stored[key]

    def decoder(self, session_id: str) -> tuple[OnnxDecoder, np.ndarray]:
        mv = self.model_of[session_id]
        if mv not in self.decoders:
            version = self.db.get(ModelVersion, mv)
            emb = self.db.scalars(
                select(Embedding).where(Embedding.image_id == self.image.id, Embedding.model_version_id == mv)
            ).first()
            if version is None or emb is None:
                raise ReplayError(f"no embedding of image {self.image.id} for model version {mv}")
            dec = OnnxDecoder(ensure_onnx(version), threads=self.threads)
            self.decoders[mv] = (dec, load_embedding(Path(emb.path)))
        return self.decoders[mv]

    def chosen(self, mv: int | None, e: Entry, overrides: dict[str, int]) -> np.ndarray:
        masks, _, index = self.decoded[(mv, e.id)]
        return masks[overrides.get(e.id, index)]

    def model_logits(self, session_id: str, d: Draft) -> np.ndarray | None:
        """Decode the draft's prompts in order; the latest one's chosen logits."""
        w, h = self.image.width, self.image.height
        mv = self.model_of[session_id]
        previous = None
        for i, (e, points, box) in enumerate(d.prompts):
            if (mv, e.id) not in self.decoded:
                if i > 0:
                    mask_input = self.chosen(mv, d.prompts[i - 1][0], d.overrides)
                elif d.base is not None:
                    mask_input = mask_input_from_binary(self.stored_mask(d.base.payload))
                else:
                    mask_input = None
                prompt = Prompt([(x, y) for x, y, _ in points], [lbl for _, _, lbl in points], box)
                coords, labels = prompt.model_inputs(w, h)
                dec, emb = self.decoder(session_id)
                masks, iou = dec.decode(emb, coords, labels, mask_input, self.guide)
                multi = prompt.uses_multimask and mask_input is None
                index = 1 + int(np.argmax(iou[1:])) if multi else 0
                self.decoded[(mv, e.id)] = (masks, iou, index)
            previous = e
        return None if previous is None else self.chosen(mv, previous, d.overrides)

    def accepted_mask(self, session_id: str, d: Draft, payload: dict[str, Any]) -> tuple[np.ndarray, bool]:
        w, h = self.image.width, self.image.height
        logits = self.model_logits(session_id, d)
        if logits is not None:
            mask = mask_from_logits(logits, w, h).astype(np.uint8)
        elif d.base is not None:
            mask = self.stored_mask(d.base.payload).astype(np.uint8)
        else:
            mask = np.zeros((h, w), np.uint8)
        for kind, path, radius in d.strokes:
            paint_stroke(mask, path, radius, 0 if kind == "erase" else 1)
        for ref in payload.get("clip") or []:
            mask[self.stored_mask(ref)] = 0
        return mask.astype(bool), logits is not None

    # sessions ---------------------------------------------------------------------------------------
    def history(self, session_id: str, upto_seq: int | None = None, record: bool = False) -> History:
        """The history of a session after its event `upto_seq` (all of them by default)."""
        if session_id not in self.sessions:
            raise ReplayError(f"unknown session {session_id}")
        hist = History()
        for ev in self.sessions[session_id]:
            if upto_seq is not None and ev.seq > upto_seq:
                break
            self.step(session_id, hist, ev, record)
        return hist

    def step(self, session_id: str, hist: History, ev: Event, record: bool) -> None:
        p = ev.payload or {}
        if ev.type == "draft_restore":
            for e in self.history(p["from_session"], p["from_seq"]).draft_entries():
                hist.push(Entry(e.id, e.type, e.payload))
        elif ev.type in ("undo", "redo"):
            src, dst = (
                (hist.entries, hist.redo_stack) if ev.type == "undo" else (hist.redo_stack, hist.entries)
            )
            if not src:
                raise ReplayError(f"{ev.type} with nothing to {ev.type} (event {ev.uuid})")
            e = src.pop()
            if p.get("target") not in (None, e.id):
                raise ReplayError(f"{ev.type} of {p.get('target')}, the history has {e.id} (event {ev.uuid})")
            dst.append(e)
        elif ev.type in HISTORY_TYPES:
            entry = Entry(ev.uuid, ev.type, p)
            d = hist.draft()
            if ev.type == "delete" and d.base is not None:
                entry.reset = _ref_key(d.base.payload) == _ref_key(p)
            if ev.type == "accept" and record:
                mask, used_model = self.accepted_mask(session_id, d, p)
                self.accepts[p["mask_uuid"]] = ReplayedMask(
                    p["mask_uuid"], ev.uuid, session_id, int(p["category_id"]), mask, used_model
                )
            hist.push(entry)

    def run(self, only: set[str] | None = None) -> dict[str, ReplayedMask]:
        """Every mask an accept event created, with its status at the end of the log (of the
        sessions in `only`, when given)."""
        chosen = [s for s in self.sessions if only is None or s in only]
        for session_id in chosen:
            self.history(session_id, record=True)
        status: dict[tuple[str, Any], str] = {}
        arrival = [ev for ev in self.by_arrival if only is None or self.client_of[ev.session_id] in only]
        events = {ev.uuid: ev for ev in arrival}
        for ev in arrival:
            p = ev.payload or {}
            if ev.type == "accept":
                self._set(status, ev, p, undo=False)
            elif ev.type == "delete":
                status[_ref_key(p)] = "deleted"
            elif ev.type in ("undo", "redo") and p.get("target") in events:
                target = events[p["target"]]
                tp = target.payload or {}
                if target.type == "accept":
                    self._set(status, target, tp, undo=ev.type == "undo")
                elif target.type == "delete":
                    status[_ref_key(tp)] = "accepted" if ev.type == "undo" else "deleted"
        for uuid, m in self.accepts.items():
            m.status = status.get(("uuid", uuid), "accepted")
        return self.accepts

    @staticmethod
    def _set(status: dict, ev: Event, p: dict[str, Any], undo: bool) -> None:
        status[("uuid", p["mask_uuid"])] = "deleted" if undo else "accepted"
        if p.get("replaces"):
            status[_ref_key(p["replaces"])] = "accepted" if undo else "deleted"


def replay_image(
    db: Session,
    image_id: int,
    threads: int = 1,
    sessions: set[str] | None = None,
    images_dir: Path | None = None,
) -> dict[str, ReplayedMask]:
    """Replay the event log of one image (of its sessions in `sessions`, client ids, when
    given; sessions they restored drafts from are read as needed): {mask_uuid: ReplayedMask}
    of every accept. The image file, in `images_dir` (`Settings.images_dir`), guides the edge
    snapping as it guided the page's; without it the logits are not snapped."""
    image = db.get(Image, image_id)
    if image is None:
        raise ReplayError(f"no image {image_id}")
    guide = None
    if images_dir is not None:
        guide = image_guide(load_rgb(image_file(images_dir, image)))
    return ImageReplay(db, image, threads, guide).run(sessions)


def accepted_masks(
    db: Session, image_id: int, threads: int = 1, images_dir: Path | None = None
) -> dict[str, np.ndarray]:
    """The image's masks accepted at the end of its log, rebuilt: {mask_uuid: bool [H, W]}."""
    replayed = replay_image(db, image_id, threads, images_dir=images_dir)
    return {u: m.mask for u, m in replayed.items() if m.status == "accepted"}
