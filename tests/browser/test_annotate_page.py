"""End to end in headless Chromium: log in, wait for the decoder, click, accept, and find the
events and the mask in the database; the browser's masks match the Python decoding rules."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from browser_harness import Instance, body_data, wait_ready
from page_helpers import (
    accept,
    clean_project,
    click_image,
    events_of,
    guide_of,
    iou,
    open_annotate,
    painted_pixels,
    python_mask,
    server_engine,
    stored_mask,
)
from pycocotools import mask as mask_utils
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator_backend.decoding import ISLAND_LOGIT, drop_islands, upscale_logits
from annotator_backend.edge_snap import image_guide, snap_masks
from annotator_backend.models import Event, Image


@pytest.fixture(scope="module")
def engine(server: Instance):  # noqa: ANN201
    eng = server_engine(server)
    yield eng
    eng.dispose()


def test_click_accept_landscape(page, server: Instance, engine) -> None:  # noqa: ANN001
    clean_project(engine, server, "demo")
    img = open_annotate(page, server, "demo")
    assert (img["w"], img["h"]) == (320, 240)
    assert body_data(page, "decoderBackend") in ("wasm", "webgpu")
    assert page.locator("#model-name").text_content() == "vit_b random"

    x, y = click_image(page, img, 150.3, 110.7)
    assert int(body_data(page, "maskArea")) > 0
    assert painted_pixels(page, "mask-overlay") > 0
    mask_id = accept(page)

    clicks = events_of(engine, page, "click")
    assert len(clicks) == 1
    c = clicks[0]
    assert abs(c.payload["x"] - x) <= 1 and abs(c.payload["y"] - y) <= 1, (c.payload, x, y)
    assert abs(c.payload["x"] - 150.3) <= 1 and abs(c.payload["y"] - 110.7) <= 1
    assert c.payload["label"] == 1 and c.seq == 1 and c.decoder_ms is not None and c.decoder_ms > 0
    assert events_of(engine, page)[0].type == "image_open"

    m, stored = stored_mask(engine, mask_id)
    assert stored.shape == (240, 320) and m.area == int(stored.sum()) > 0
    assert m.clicks == 1 and m.active_ms >= 0
    accepts = events_of(engine, page, "accept")
    assert [(e.seq, e.mask_id) for e in accepts] == [(2, mask_id)]
    expected = python_mask(engine, img["id"], [([(c.payload["x"], c.payload["y"])], [1])])
    assert iou(stored, expected) >= 0.99

    # Reload: the accepted mask comes back from the server (compressed RLE) and is drawn.
    page.reload()
    wait_ready(page)
    assert painted_pixels(page, "accepted-canvas") > 0
    assert not page.errors, page.errors


def test_portrait_negative_point(page, server: Instance, engine) -> None:  # noqa: ANN001
    clean_project(engine, server, "tall")
    img = open_annotate(page, server, "tall")
    assert (img["w"], img["h"]) == (200, 360)
    box = page.locator("[data-testid=canvas]").bounding_box()
    assert abs(box["width"] / box["height"] - 200 / 360) < 0.01

    x1, y1 = click_image(page, img, 100.0, 200.0)
    x2, y2 = click_image(page, img, 20.0, 40.0, button="right")
    x3, y3 = click_image(page, img, 180.0, 340.0, shift=True)
    mask_id = accept(page)

    clicks = events_of(engine, page, "click")
    assert [c.payload["label"] for c in clicks] == [1, 0, 0]
    for c, (x, y) in zip(clicks, [(x1, y1), (x2, y2), (x3, y3)], strict=True):
        assert abs(c.payload["x"] - x) <= 1 and abs(c.payload["y"] - y) <= 1
    assert [c.seq for c in clicks] == [1, 2, 3]

    _, stored = stored_mask(engine, mask_id)
    assert stored.shape == (360, 200)
    pts = [(c.payload["x"], c.payload["y"]) for c in clicks]
    steps = [(pts[:1], [1]), (pts[:2], [1, 0]), (pts[:3], [1, 0, 0])]
    assert iou(stored, python_mask(engine, img["id"], steps)) >= 0.99


def test_undo_redo_clear_and_help(page, server: Instance, engine) -> None:  # noqa: ANN001
    img = open_annotate(page, server, "demo")
    # The context menu never opens on the canvas.
    prevented = page.evaluate(
        """() => { const e = new MouseEvent('contextmenu', {bubbles: true, cancelable: true});
                   return !document.querySelector('[data-testid=canvas]').dispatchEvent(e); }"""
    )
    assert prevented
    click_image(page, img, 120.0, 90.0)
    first = int(body_data(page, "maskArea"))
    assert first > 0
    page.keyboard.press("m")  # next multimask candidate (logged, undoable)
    area = int(body_data(page, "maskArea"))
    page.keyboard.press("Control+z")  # undoes the choice
    page.wait_for_function(f"document.body.dataset.maskArea === '{first}'")
    page.keyboard.press("Control+z")  # undoes the click
    page.wait_for_function("document.body.dataset.maskArea === '0'")
    page.keyboard.press("Control+Shift+z")
    page.keyboard.press("Control+y")
    page.wait_for_function(f"document.body.dataset.maskArea === '{area}'")
    page.keyboard.press("Escape")
    page.wait_for_function("document.body.dataset.maskArea === '0'")
    page.wait_for_function("document.body.dataset.pendingEvents === '0'")
    events = events_of(engine, page)
    types = ["image_open", "click", "multimask_choice", "undo", "undo", "redo", "redo", "clear"]
    assert [e.type for e in events] == types
    click, choice = events[1], events[2]
    assert choice.payload["index"] in (1, 2, 3) and choice.payload["target"] == click.uuid
    assert [e.payload["target"] for e in events[3:7]] == [choice.uuid, click.uuid, click.uuid, choice.uuid]
    assert [e.seq for e in events] == list(range(8))

    # Number keys pick categories; the help overlay lists every shortcut.
    page.keyboard.press("2")
    assert page.locator("input[name=category]").nth(1).is_checked()
    assert page.locator("#help-overlay").is_hidden()
    page.keyboard.press("?")
    help_text = page.locator("#help-overlay").inner_text()
    for key in (
        "Left click",
        "Right click",
        "Left drag",
        "Enter",
        "Shift + Enter",
        "Esc",
        "Ctrl + Z",
        "Ctrl + Shift + Z",
        "1 … 9",
        "M",
        "B",
        "E",
        "[ / ]",
        "Alt + click",
        "Delete",
        "Wheel / + / -",
        "Space + drag",
        "N",
        "Shift + N",
        "S",
        "T",
        "? / H",
        "Brush and eraser vs the model",
        "Overlap",
        "30 s",
    ):
        assert key in help_text, key
    page.keyboard.press("Escape")
    assert page.locator("#help-overlay").is_hidden()


def test_js_mask_rules_match_python(page, server: Instance) -> None:  # noqa: ANN001
    """static/js/masks.js (crop + two-step bilinear + threshold + column-major RLE) gives the
    masks of decoding.mask_from_logits, for landscape, portrait, square and odd sizes: pixels
    may differ only where the logit is within float32 rounding of the threshold."""
    page.goto(f"{server.base_url}/")
    rng = np.random.default_rng(7)
    coarse = rng.normal(size=(16, 16)).astype(np.float32)
    logits = np.kron(coarse, np.ones((16, 16), np.float32)) + rng.normal(scale=0.3, size=(256, 256)).astype(
        np.float32
    )
    for w, h in [(320, 240), (200, 360), (300, 300), (1500, 1001), (7, 13)]:
        got = page.evaluate(
            """async ([l, w, h]) => {
                const m = await import('/static/js/masks.js');
                const r = m.imageMaskRle(new Float32Array(l), w, h);
                return {counts: r.counts, size: r.size, area: r.area, bbox: r.bbox};
            }""",
            [logits.ravel().tolist(), w, h],
        )
        up = upscale_logits(logits, w, h)
        want = up > 0
        assert got["size"] == [h, w]
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": got["counts"]}, h, w)
        mask = mask_utils.decode(rle).astype(bool)
        diff = mask != want
        assert np.abs(up[diff]).max(initial=0.0) < 1e-4, (w, h)
        assert diff.sum() <= 1e-5 * w * h + 1, (w, h, int(diff.sum()))
        assert got["area"] == int(mask.sum())
        ref = mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))).tolist()
        assert got["bbox"] == [int(v) for v in ref]


def test_js_islands_rule_matches_python(page, server: Instance) -> None:  # noqa: ANN001
    """static/js/islands.js drops the same islands as decoding.drop_islands: points, a box,
    negative points only, regions at the grid's edges, a previous mask."""
    page.goto(f"{server.base_url}/")
    rng = np.random.default_rng(3)
    coarse = rng.normal(size=(4, 32, 32)).astype(np.float32)
    masks = np.kron(coarse, np.ones((1, 8, 8), np.float32)) - 0.4
    prompts = [
        ([[100.0, 200.0], [0.0, 0.0]], [1, -1]),
        ([[10.5, 1000.0], [700.0, 300.0], [512.0, 512.0]], [1, 0, 1]),
        ([[400.0, 400.0]], [0]),
        ([[50.0, 60.0], [300.0, 500.0]], [2, 3]),
        ([[1023.9, 1023.9], [0.0, 0.0]], [1, -1]),
        ([[400.0, 400.0]], [0], np.kron(rng.normal(size=(16, 16)), np.ones((16, 16))).astype(np.float32) - 1),
    ]
    dropped = False
    for coords, labels, *prev in prompts:
        mask_input = prev[0] if prev else None
        c = np.array([coords], np.float32)
        lbl = np.array([labels], np.float32)
        got = page.evaluate(
            """async ([m, c, l, n, p]) => {
                const { dropIslands } = await import('/static/js/islands.js');
                const a = new Float32Array(m);
                dropIslands(a, new Float32Array(c), new Float32Array(l), n, p && new Float32Array(p));
                return Array.from(a);
            }""",
            [
                masks.ravel().tolist(),
                c.ravel().tolist(),
                lbl.ravel().tolist(),
                len(labels),
                None if mask_input is None else mask_input.ravel().tolist(),
            ],
        )
        want = drop_islands(masks, c, lbl, mask_input)
        assert mask_input is None or not np.array_equal(want, masks)
        dropped |= bool(((want == ISLAND_LOGIT) & (masks > 0)).any())
        assert np.array_equal(np.array(got, np.float32).reshape(masks.shape), want), (coords, labels)
    assert dropped


def test_js_edge_snap_matches_python(page, server: Instance, engine) -> None:  # noqa: ANN001
    """static/js/edge_snap.js snaps logits exactly as edge_snap.py, for images of several
    shapes, and the guide the worker gets of the page's image is Python's of the file."""
    page.goto(f"{server.base_url}/")
    rng = np.random.default_rng(5)
    coarse = rng.normal(size=(4, 16, 16)).astype(np.float32) * 6
    masks = np.kron(coarse, np.ones((1, 16, 16), np.float32)) + rng.normal(size=(4, 256, 256)).astype(
        np.float32
    )
    for w, h in ((97, 61), (300, 400), (1030, 20)):
        yy, xx = np.mgrid[:h, :w]
        rgb = np.stack([(xx * 7) % 256, (yy * 3) % 256, ((xx > w / 2) ^ (yy > h / 3)) * 200], -1)
        rgb = (rgb + rng.integers(0, 40, rgb.shape)).clip(0, 255).astype(np.uint8)
        rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], -1)
        got = page.evaluate(
            """async ([m, px, w, h]) => {
                const { imageGuide, snapMasks } = await import('/static/js/edge_snap.js');
                const a = new Float32Array(m);
                snapMasks(a, [0, 2], imageGuide(new Uint8ClampedArray(px), w, h));
                return Array.from(a);
            }""",
            [masks.ravel().tolist(), rgba.ravel().tolist(), w, h],
        )
        want = snap_masks(masks, image_guide(rgb), [0, 2])
        assert not np.array_equal(want[0], masks[0]) and np.array_equal(want[1], masks[1])
        assert np.array_equal(np.array(got, np.float32).reshape(masks.shape), want), (w, h)
    # the box filter's scratch buffers: a call of another shape in between changes nothing
    same = page.evaluate(
        """async () => {
            const { boxMean } = await import('/static/js/edge_snap.js');
            const data = (n) => Float64Array.from({length: n}, (_, i) => Math.sin(i * 7.3) * 1e3);
            const first = boxMean(data(5 * 256 * 6), 5, 256, 6);
            boxMean(data(100 * 256 * 6), 100, 256, 6);
            boxMean(data(5 * 256 * 3), 5, 256, 3);
            const again = boxMean(data(5 * 256 * 6), 5, 256, 6);
            return again.every((v, i) => v === first[i]);
        }"""
    )
    assert same
    with Session(engine) as s:
        image_id = s.scalars(select(Image.id).where(Image.project_id == server.projects["demo"])).first()
    got = page.evaluate(
        """async (url) => {
            const { BITMAP_OPTIONS, bitmapGuide } = await import('/static/js/edge_snap.js');
            const img = new Image();
            img.src = url;
            await img.decode();  // as the page loads it, then hands it to the worker
            const g = bitmapGuide(await createImageBitmap(img, BITMAP_OPTIONS));
            return [g.lw, g.lh, Array.from(g.colors)];
        }""",
        f"/images/{image_id}/file",
    )
    want = guide_of(engine, image_id)
    assert got[:2] == [want.colors.shape[1], want.colors.shape[0]]
    assert np.array_equal(np.array(got[2]).reshape(want.colors.shape), want.colors)


PUT_IN_OUTBOX = """async ([imageId, uuid, session]) => {
    const page = JSON.parse(document.getElementById('page-data').textContent);
    const ev = {uuid, session, seq: 0, type: 'click', image_id: imageId,
                model_version_id: page.model.id, client_ts: Date.now(), decoder_ms: null,
                payload: {x: 12.5, y: 20.25, label: 1}};
    const db = await new Promise((ok, ko) => {
        const r = indexedDB.open('sam-annotator', 1);
        r.onsuccess = () => ok(r.result);
        r.onerror = () => ko(r.error);
    });
    await new Promise((ok) => {
        const tx = db.transaction('outbox', 'readwrite');
        const rec = {uuid, owner: page.user_id, event: ev, created: Date.now()};
        tx.objectStore('outbox').put(rec);
        tx.oncomplete = ok;
    });
    db.close();
}"""


def test_outbox_resends_stored_events_once(page, server: Instance, engine) -> None:  # noqa: ANN001
    """An event left in the IndexedDB outbox (page closed before the ack) is sent by the next
    page load; sent again (its ack was lost) it is acked as a duplicate and stored once."""
    img = open_annotate(page, server, "demo")
    event = [img["id"], str(uuid.uuid4()), str(uuid.uuid4())]
    for _ in range(2):
        page.evaluate(PUT_IN_OUTBOX, event)
        page.reload()
        wait_ready(page)
        page.wait_for_function("document.body.dataset.pendingEvents === '0'", timeout=30000)
        assert int(body_data(page, "ackedEvents")) == 2  # that event and this page's image_open
        with Session(engine) as s:
            rows = list(s.scalars(select(Event).where(Event.uuid == event[1])))
        assert len(rows) == 1 and rows[0].payload == {"x": 12.5, "y": 20.25, "label": 1}


def test_worker_keeps_only_the_latest_prompt(page, server: Instance) -> None:  # noqa: ANN001
    """Decodes sent while one runs are dropped except the newest; replies keep their ids."""
    open_annotate(page, server, "demo")
    replies = page.evaluate(
        """async (pid) => {
            const { DecoderClient } = await import('/static/js/decoder_client.js');
            const next = await (await fetch(`/api/projects/${pid}/next`)).json();
            const d = new DecoderClient();
            const info = await d.init(next.model.decoder_url, { backend: 'wasm', numThreads: 1 });
            await d.loadEmbedding('k', next.embedding_url);
            const req = (i) => ({ coords: new Float32Array([10 + i, 10, 0, 0]),
                                  labels: new Float32Array([1, -1]), count: 2,
                                  maskInput: null, multimask: true });
            const all = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => d.decode('k', req(i))));
            d.terminate();
            return { backend: info.backend, types: all.map((r) => r.type),
                     index: all[5].index, iou: Array.from(all[5].iou), n: all[5].masks.length };
        }""",
        server.projects["demo"],
    )
    assert replies["backend"] == "wasm"
    assert replies["types"][0] == "decoded" and replies["types"][-1] == "decoded"
    assert replies["types"][1:5] == ["dropped"] * 4
    assert replies["n"] == 4 * 256 * 256 and len(replies["iou"]) == 4
    assert replies["index"] == 1 + int(np.argmax(replies["iou"][1:]))
