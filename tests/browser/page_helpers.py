"""Helpers of the annotate-page browser tests: open the page, act in image pixels, read the
database, compare masks with the Python decoding rules and with replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from browser_harness import Instance, body_data, wait_ready
from pycocotools import mask as mask_utils
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from annotator_backend.decoding import OnnxDecoder, Prompt, mask_from_logits
from annotator_backend.edge_snap import Guide, image_guide
from annotator_backend.embeddings import load_embedding
from annotator_backend.images import image_file, load_rgb
from annotator_backend.model_registry import ensure_onnx
from annotator_backend.models import AnnotationSession, Embedding, Event, Image, Mask, ModelVersion
from annotator_backend.replay import replay_image

# database URL -> the images folder of the server using it (server_engine)
IMAGES_DIRS: dict[str, Path] = {}


def server_engine(server: Instance) -> Engine:
    """An engine on the test server's database that the helpers below can find its images by."""
    from sqlalchemy import create_engine

    engine = create_engine(server.db_url)
    IMAGES_DIRS[server.db_url] = server.root / "data" / "images"
    return engine


def images_dir(engine: Engine) -> Path:
    return IMAGES_DIRS[engine.url.render_as_string(hide_password=False)]


def guide_of(engine: Engine, image_id: int) -> Guide:
    """The edge-snapping guide of an image of the server, as the page computes it."""
    with Session(engine) as s:
        path = image_file(images_dir(engine), s.get(Image, image_id))
    return image_guide(load_rgb(path))


def clean_project(engine, server: Instance, project: str) -> None:  # noqa: ANN001
    """Retire every mask of a project's images, so a test starts on empty images."""
    with Session(engine) as s:
        ids = select(Image.id).where(Image.project_id == server.projects[project])
        s.execute(update(Mask).where(Mask.image_id.in_(ids)).values(status="deleted"))
        s.commit()


def open_annotate(page, server: Instance, project: str) -> dict:  # noqa: ANN001
    page.goto(f"{server.base_url}/projects/{server.projects[project]}/annotate")
    wait_ready(page)
    return image_info(page, server)


def image_info(page, server: Instance) -> dict:  # noqa: ANN001
    from sqlalchemy import create_engine

    image_id = int(body_data(page, "imageId"))
    engine = create_engine(server.db_url)
    with Session(engine) as s:
        img = s.get(Image, image_id)
        info = {"id": img.id, "w": img.width, "h": img.height}
    engine.dispose()
    return info


def canvas_box(page) -> dict:  # noqa: ANN001
    return page.locator("[data-testid=canvas]").bounding_box()


def to_screen(page, img: dict, x: float, y: float) -> tuple[float, float]:  # noqa: ANN001
    """Screen position of image pixel (x, y) at zoom 1."""
    box = canvas_box(page)
    return box["x"] + x * box["width"] / img["w"], box["y"] + y * box["height"] / img["h"]


def decode_count(page) -> int:  # noqa: ANN001
    return int(body_data(page, "decodeCount") or 0)


def wait_decodes(page, before: int) -> None:  # noqa: ANN001
    page.wait_for_function(f"Number(document.body.dataset.decodeCount || 0) > {before}", timeout=60000)


def click_image(page, img: dict, x: float, y: float, button: str = "left", shift: bool = False) -> tuple:  # noqa: ANN001
    """Click the displayed image at (about) image pixel (x, y); returns the exact image
    coordinates of the click, computed from the integer display offset that was clicked."""
    box = canvas_box(page)
    px = round(x * box["width"] / img["w"])
    py = round(y * box["height"] / img["h"])
    before = decode_count(page)
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(box["x"] + px, box["y"] + py, button=button)
    if shift:
        page.keyboard.up("Shift")
    wait_decodes(page, before)
    return px * img["w"] / box["width"], py * img["h"] / box["height"]


def drag(page, img: dict, a: tuple, b: tuple, steps: int = 8, button: str = "left") -> None:  # noqa: ANN001
    """Press at image pixel a, move to b in `steps`, release."""
    page.mouse.move(*to_screen(page, img, *a))
    page.mouse.down(button=button)
    page.mouse.move(*to_screen(page, img, *b), steps=steps)
    page.mouse.up(button=button)


def wait_synced(page) -> None:  # noqa: ANN001
    page.wait_for_function("document.body.dataset.pendingEvents === '0'", timeout=30000)


def accept(page, key: str = "Enter") -> int:  # noqa: ANN001
    """Accept the draft, wait for the server's ack of the mask; returns its mask id."""
    before = body_data(page, "lastMaskId")
    page.keyboard.press(key)
    page.wait_for_function(
        "(b) => document.body.dataset.lastMaskId && document.body.dataset.lastMaskId !== b"
        " && document.body.dataset.pendingEvents === '0'",
        arg=before,
        timeout=30000,
    )
    return int(body_data(page, "lastMaskId"))


def painted_pixels(page, testid: str) -> int:  # noqa: ANN001
    return page.evaluate(
        """(id) => {
            const c = document.querySelector(`[data-testid=${id}]`) || document.getElementById(id);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n;
        }""",
        testid,
    )


def pixel_alpha(page, testid: str, img: dict, x: float, y: float) -> int:  # noqa: ANN001
    """Alpha of the overlay canvas at image pixel (x, y) (zoom 1)."""
    return page.evaluate(
        """([id, fx, fy]) => {
            const c = document.querySelector(`[data-testid=${id}]`) || document.getElementById(id);
            const ctx = c.getContext('2d');
            return ctx.getImageData(Math.floor(fx * c.width), Math.floor(fy * c.height), 1, 1).data[3];
        }""",
        [testid, x / img["w"], y / img["h"]],
    )


def decoder_and_embedding(engine, image_id: int) -> tuple[OnnxDecoder, np.ndarray, int, int]:  # noqa: ANN001
    with Session(engine) as s:
        img = s.get(Image, image_id)
        mv = s.scalars(select(ModelVersion).where(ModelVersion.is_active)).one()
        emb = s.scalars(
            select(Embedding).where(Embedding.image_id == image_id, Embedding.model_version_id == mv.id)
        ).one()
        return OnnxDecoder(ensure_onnx(mv)), load_embedding(Path(emb.path)), img.width, img.height


def python_mask(engine, image_id: int, steps: list, overrides: dict | None = None) -> np.ndarray:  # noqa: ANN001
    """The mask decoding.py gives for the same prompt steps ((points, labels) or Prompt),
    decoder, embedding and image; `overrides`: {step index: chosen multimask output}."""
    dec, embedding, w, h = decoder_and_embedding(engine, image_id)
    guide = guide_of(engine, image_id)
    prev = None
    for k, step in enumerate(steps):
        prompt = step if isinstance(step, Prompt) else Prompt(points=step[0], labels=step[1])
        coords, labels = prompt.model_inputs(w, h)
        masks, iou_pred = dec.decode(embedding, coords, labels, prev, guide)
        idx = 1 + int(np.argmax(iou_pred[1:])) if prompt.uses_multimask and prev is None else 0
        prev = masks[(overrides or {}).get(k, idx)]
    return mask_from_logits(prev, w, h)


def stored_mask(engine, mask_id: int) -> tuple[Mask, np.ndarray]:  # noqa: ANN001
    with Session(engine) as s:
        m = s.get(Mask, mask_id)
        img = s.get(Image, m.image_id)
        s.expunge(m)
    rle = {"size": [img.height, img.width], "counts": m.rle_counts.encode()}
    return m, mask_utils.decode(rle).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def events_of(engine, page, type_: str | None = None, session_id: str | None = None) -> list[Event]:  # noqa: ANN001
    """Events of the page's annotation session (or `session_id`), in sequence order."""
    query = (
        select(Event)
        .join(AnnotationSession, AnnotationSession.id == Event.session_id)
        .where(AnnotationSession.client_id == (session_id or body_data(page, "session")))
        .order_by(Event.seq)
    )
    if type_:
        query = query.where(Event.type == type_)
    with Session(engine) as s:
        rows = list(s.scalars(query))
        s.expunge_all()
    return rows


def assert_replay_matches(engine, image_id: int, sessions: set[str], min_iou: float = 0.99) -> dict:  # noqa: ANN001
    """Replay the image's log (the page sessions `sessions`): every mask they made comes back
    with its status, its pixels exactly where no decode was involved, at IoU >= min_iou
    otherwise."""
    with Session(engine) as s:
        replayed = replay_image(s, image_id, sessions=sessions, images_dir=images_dir(engine))
        stored = {m.client_uuid: m for m in s.scalars(select(Mask).where(Mask.image_id == image_id))}
        img = s.get(Image, image_id)
        s.expunge_all()
    out = {}
    for mask_uuid, r in replayed.items():
        m = stored[mask_uuid]
        rle = {"size": [img.height, img.width], "counts": m.rle_counts.encode()}
        pixels = mask_utils.decode(rle).astype(bool)
        score = iou(pixels, r.mask)
        want = min_iou if r.used_model else 1.0
        assert score >= want, (mask_uuid, score, r.used_model)
        assert r.status == m.status, (mask_uuid, r.status, m.status)
        out[mask_uuid] = score
    return out
