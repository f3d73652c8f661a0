"""The annotator's tools in headless Chromium: box and box + points, hover preview, multimask
choice, brush, eraser, undo/redo over every step, editing an accepted mask, delete / hide /
category, zoom and pan. Each session is replayed from the event log afterwards
(annotator_backend.replay) and must give the stored masks back."""

from __future__ import annotations

import numpy as np
import pytest
from browser_harness import Instance, body_data
from page_helpers import (
    accept,
    assert_replay_matches,
    canvas_box,
    clean_project,
    click_image,
    decode_count,
    drag,
    events_of,
    iou,
    open_annotate,
    painted_pixels,
    pixel_alpha,
    python_mask,
    server_engine,
    stored_mask,
    to_screen,
    wait_decodes,
    wait_synced,
)
from sqlalchemy.orm import Session

from annotator_backend.decoding import Prompt
from annotator_backend.models import Mask
from annotator_backend.replay import mask_input_from_binary, paint_stroke


@pytest.fixture(scope="module")
def engine(server: Instance):  # noqa: ANN201
    eng = server_engine(server)
    yield eng
    eng.dispose()


@pytest.fixture
def demo(page, server: Instance, engine) -> dict:  # noqa: ANN001
    """The demo image with no masks, open in the page."""
    clean_project(engine, server, "demo")
    return open_annotate(page, server, "demo")


def session_of(page) -> str:  # noqa: ANN001
    return body_data(page, "session")


def mask_status(engine, mask_id: int) -> tuple[str, int]:  # noqa: ANN001
    with Session(engine) as s:
        m = s.get(Mask, mask_id)
        return m.status, m.category_id


def strokes_expected(img: dict, strokes: list) -> np.ndarray:
    mask = np.zeros((img["h"], img["w"]), np.uint8)
    for ev in strokes:
        paint_stroke(mask, ev.payload["path"], ev.payload["radius"], 0 if ev.type == "erase" else 1)
    return mask.astype(bool)


def test_box_and_box_plus_points(page, server: Instance, engine, demo: dict) -> None:  # noqa: ANN001
    img = demo
    before = decode_count(page)
    drag(page, img, (90, 70), (210, 160))
    wait_decodes(page, before)
    assert int(body_data(page, "maskArea")) > 0
    assert body_data(page, "chosenCandidate") == ""  # a box decodes to the single-mask output
    x, y = click_image(page, img, 150, 115, button="right")  # box + a negative point
    mask_id = accept(page)

    box_ev = events_of(engine, page, "box")[0]
    b = box_ev.payload
    for got, want in zip((b["x0"], b["y0"], b["x1"], b["y1"]), (90, 70, 210, 160), strict=True):
        assert abs(got - want) <= 1.5, b
    assert box_ev.decoder_ms and box_ev.decoder_ms > 0
    click = events_of(engine, page, "click")[0]
    assert abs(click.payload["x"] - x) <= 1 and click.payload["label"] == 0
    box = (b["x0"], b["y0"], b["x1"], b["y1"])
    steps = [Prompt([], [], box=box), Prompt([(click.payload["x"], click.payload["y"])], [0], box=box)]
    _, stored = stored_mask(engine, mask_id)
    assert iou(stored, python_mask(engine, img["id"], steps)) >= 0.99
    assert_replay_matches(engine, img["id"], {session_of(page)})
    assert not page.errors, page.errors


def test_hover_preview_and_multimask_choice(page, server: Instance, engine, demo: dict) -> None:  # noqa: ANN001
    img = demo
    x, y = to_screen(page, img, 130, 100)
    page.mouse.move(x, y)
    page.wait_for_function("Number(document.body.dataset.hoverDecodes || 0) >= 1", timeout=60000)
    assert painted_pixels(page, "mask-overlay") > 0  # the preview is drawn, nothing is logged
    assert [e.type for e in events_of(engine, page)] == ["image_open"]
    before = decode_count(page)
    page.mouse.click(x, y)  # where the preview was decoded: its decode is reused
    wait_decodes(page, before)
    page.wait_for_selector("[data-testid=candidate-3]", state="visible")
    wait_synced(page)
    click = events_of(engine, page, "click")[0]
    assert click.payload.get("preview") is True and click.decoder_ms > 0

    dec_steps = [([(click.payload["x"], click.payload["y"])], [1])]
    best = int(body_data(page, "chosenCandidate"))
    captions = [page.locator(f"[data-testid=candidate-{i}]").inner_text() for i in (1, 2, 3)]
    ious = [float(c.split("IoU")[1]) for c in captions]
    assert best == 1 + int(np.argmax(ious))
    other = 1 + best % 3
    page.click(f"[data-testid=candidate-{other}]")
    page.wait_for_function(f"document.body.dataset.chosenCandidate === '{other}'")
    mask_id = accept(page)
    choice = events_of(engine, page, "multimask_choice")[0]
    assert (choice.payload["index"], choice.payload["target"], choice.payload["previous"]) == (
        other,
        click.uuid,
        best,
    )
    _, stored = stored_mask(engine, mask_id)
    assert iou(stored, python_mask(engine, img["id"], dec_steps, {0: other})) >= 0.99
    assert_replay_matches(engine, img["id"], {session_of(page)})


def test_brush_and_eraser(page, server: Instance, engine, demo: dict) -> None:  # noqa: ANN001
    img = demo
    page.keyboard.press("b")
    page.locator("#radius").fill("6")
    drag(page, img, (30, 30), (90, 40))
    assert int(body_data(page, "maskArea")) > 0
    page.keyboard.press("e")
    drag(page, img, (60, 22), (60, 48), steps=4)
    only_strokes = accept(page)
    strokes = [e for e in events_of(engine, page) if e.type in ("stroke", "erase")]
    assert [e.type for e in strokes] == ["stroke", "erase"]
    assert all(e.payload["radius"] == 6 and len(e.payload["path"]) >= 2 for e in strokes)
    _, stored = stored_mask(engine, only_strokes)
    assert np.array_equal(stored, strokes_expected(img, strokes))  # IoU 1.0: same rasterisation

    # A model prompt after a brush edit keeps the edit: strokes are a layer over the model mask.
    page.keyboard.press("b")
    drag(page, img, (250, 200), (300, 220))
    page.keyboard.press("p")
    click_image(page, img, 150, 110)
    assert pixel_alpha(page, "mask-overlay", img, 275, 210) > 0
    with_model = accept(page, "Shift+Enter")
    _, stored = stored_mask(engine, with_model)
    brushed = strokes_expected(img, [e for e in events_of(engine, page, "stroke")][-1:])
    assert stored[brushed].all()
    assert_replay_matches(engine, img["id"], {session_of(page)})


def test_undo_redo_over_every_step(page, server: Instance, engine, demo: dict) -> None:  # noqa: ANN001
    img = demo
    click_image(page, img, 150, 110)
    a1 = body_data(page, "maskArea")
    page.keyboard.press("b")
    drag(page, img, (20, 200), (80, 230))
    a2 = body_data(page, "maskArea")
    assert a2 != a1
    page.keyboard.press("Control+z")  # the stroke
    page.wait_for_function(f"document.body.dataset.maskArea === '{a1}'")
    page.keyboard.press("Control+Shift+z")
    page.wait_for_function(f"document.body.dataset.maskArea === '{a2}'")
    mask_id = accept(page, "Shift+Enter")
    rows = page.locator("[data-testid=mask-row]")
    assert rows.count() == 1

    page.keyboard.press("Control+z")  # the accept: the mask goes, the draft comes back
    page.wait_for_function(f"document.body.dataset.maskArea === '{a2}'")
    wait_synced(page)
    assert rows.count() == 0 and mask_status(engine, mask_id)[0] == "deleted"
    page.keyboard.press("Control+y")
    page.wait_for_function("document.body.dataset.maskArea === '0'")
    wait_synced(page)
    assert rows.count() == 1 and mask_status(engine, mask_id)[0] == "accepted"

    cats = page.locator("[data-testid=mask-row] select option")
    first_cat, second_cat = (int(cats.nth(i).get_attribute("value")) for i in (0, 1))
    page.locator("[data-testid=mask-row] select").select_option(str(second_cat))
    wait_synced(page)
    assert mask_status(engine, mask_id) == ("accepted", second_cat)
    page.keyboard.press("Control+z")
    wait_synced(page)
    assert mask_status(engine, mask_id) == ("accepted", first_cat)
    page.keyboard.press("Control+Shift+z")
    wait_synced(page)
    assert mask_status(engine, mask_id) == ("accepted", second_cat)

    page.locator("[data-testid=mask-row] .mask-delete").click()
    wait_synced(page)
    assert rows.count() == 0 and mask_status(engine, mask_id)[0] == "deleted"
    page.keyboard.press("Control+z")
    wait_synced(page)
    assert rows.count() == 1 and mask_status(engine, mask_id)[0] == "accepted"

    types = [e.type for e in events_of(engine, page)]
    assert types == [
        "image_open", "click", "stroke", "undo", "redo", "accept", "undo", "redo",
        "category_change", "undo", "redo", "delete", "undo",
    ]  # fmt: skip
    assert_replay_matches(engine, img["id"], {session_of(page)})


def test_edit_hide_and_delete_an_accepted_mask(page, server: Instance, engine, demo: dict) -> None:  # noqa: ANN001
    img = demo
    page.keyboard.press("b")
    drag(page, img, (100, 100), (200, 120))
    first = accept(page)
    page.locator("[data-testid=mask-row] .mask-edit").click()
    page.wait_for_selector("[data-testid=mask-row].editing")
    assert int(body_data(page, "maskArea")) > 0  # the reopened mask is the draft
    page.keyboard.press("e")
    drag(page, img, (150, 90), (150, 130), steps=4)
    second = accept(page)
    assert mask_status(engine, first)[0] == "deleted" and mask_status(engine, second)[0] == "accepted"
    acc = events_of(engine, page, "accept")[-1]
    first_uuid = events_of(engine, page, "accept")[0].payload["mask_uuid"]
    assert acc.payload["replaces"] == {"mask_uuid": first_uuid}
    strokes = [e for e in events_of(engine, page) if e.type in ("stroke", "erase")]
    _, stored = stored_mask(engine, second)
    assert np.array_equal(stored, strokes_expected(img, strokes))

    # Alt+click reopens it; a click refines it (the mask is fed as mask_input); Esc stops editing.
    page.keyboard.press("p")
    page.keyboard.down("Alt")
    page.mouse.click(*to_screen(page, img, 120, 110))
    page.keyboard.up("Alt")
    page.wait_for_selector("[data-testid=mask-row].editing")
    click_image(page, img, 180, 112)
    third = accept(page)
    assert mask_status(engine, second)[0] == "deleted"
    page.locator("[data-testid=mask-row] .mask-edit").click()
    page.wait_for_selector("[data-testid=mask-row].editing")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=mask-row].editing", state="detached")
    assert mask_status(engine, third)[0] == "accepted"

    shown = painted_pixels(page, "accepted-canvas")
    assert shown > 0
    page.locator("[data-testid=mask-row] .mask-toggle").click()
    page.wait_for_function("() => document.querySelector('.mask-state').textContent.includes('hidden')")
    assert painted_pixels(page, "accepted-canvas") == 0
    page.locator("[data-testid=mask-row] .mask-toggle").click()
    page.locator("[data-testid=mask-row] .mask-edit").click()
    page.keyboard.press("Delete")  # deletes the mask being edited
    wait_synced(page)
    assert mask_status(engine, third)[0] == "deleted"
    types = [e.type for e in events_of(engine, page)]
    assert types[-6:] == ["select", "clear", "hide", "show", "select", "delete"]
    assert_replay_matches(engine, img["id"], {session_of(page)})


def test_zoom_and_pan_keep_image_coordinates(page, server: Instance, engine, demo: dict) -> None:  # noqa: ANN001
    img = demo
    box = canvas_box(page)
    scale = box["width"] / img["w"]  # CSS px per image px at zoom 1
    cx, cy = to_screen(page, img, 160, 120)
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -400)
    page.wait_for_function("Number(document.body.dataset.zoom || 1) > 1.5")
    z = float(body_data(page, "zoom"))
    before = decode_count(page)
    page.mouse.click(cx + 40, cy - 20)
    wait_decodes(page, before)
    page.keyboard.down(" ")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 50, cy, steps=5)
    page.mouse.up()
    page.keyboard.up(" ")
    page.keyboard.press("b")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 30, cy, steps=5)
    page.mouse.up()
    wait_synced(page)
    click = events_of(engine, page, "click")[0].payload
    assert abs(click["x"] - (160 + 40 / (scale * z))) <= 1 and abs(click["y"] - (120 - 20 / (scale * z))) <= 1
    path = events_of(engine, page, "stroke")[0].payload["path"]
    shift = 50 / (scale * z)  # the pan moved the image left by 50 CSS px
    assert abs(path[0][0] - (160 + shift)) <= 1 and abs(path[0][1] - 120) <= 1
    assert abs(path[-1][0] - (160 + shift + 30 / (scale * z))) <= 1
    page.keyboard.press("0")
    page.wait_for_function("document.body.dataset.zoom === '1.000'")


def test_js_pixel_rules_match_python(page, server: Instance) -> None:  # noqa: ANN001
    """static/js/strokes.js and masks.maskInputFromBinary give exactly what replay.py gives."""
    page.goto(f"{server.base_url}/")
    rng = np.random.default_rng(5)
    w, h = 97, 61
    strokes = []
    for k in range(8):
        n = int(rng.integers(1, 6))
        path = (rng.random((n, 2)) * [w + 10, h + 10] - 5).round(2).tolist()
        kind = "erase" if k % 3 == 2 else "stroke"
        strokes.append({"kind": kind, "path": path, "radius": float(rng.integers(1, 12))})
    base = rng.random((h, w)) > 0.6
    got = page.evaluate(
        """async ([strokes, base, w, h]) => {
            const s = await import('/static/js/strokes.js');
            const m = await import('/static/js/masks.js');
            const mask = new Uint8Array(w * h);
            s.applyStrokes(mask, w, h, strokes);
            const logits = m.maskInputFromBinary(Uint8Array.from(base), w, h);
            return {mask: Array.from(mask), logits: Array.from(logits)};
        }""",
        [strokes, base.ravel().astype(int).tolist(), w, h],
    )
    want = np.zeros((h, w), np.uint8)
    for st in strokes:
        paint_stroke(want, st["path"], st["radius"], 0 if st["kind"] == "erase" else 1)
    assert np.array_equal(np.array(got["mask"], np.uint8).reshape(h, w), want)
    assert np.array_equal(np.array(got["logits"], np.float32).reshape(256, 256), mask_input_from_binary(base))


def test_fast_clicks_each_refine_the_previous_mask(page, server: Instance, engine, demo: dict) -> None:  # noqa: ANN001
    """Clicks faster than the decoder: none is skipped; each decodes with the mask of the one
    before it, in order, so the stored mask is the Python chain's and replays."""
    img = demo
    points = [(140, 100, "left"), (60, 40, "right"), (200, 150, "left")]
    for x, y, button in points:
        page.mouse.click(*to_screen(page, img, x, y), button=button)
    mask_id = accept(page, "Shift+Enter")
    clicks = events_of(engine, page, "click")
    assert [c.payload["label"] for c in clicks] == [1, 0, 1]
    assert all(c.decoder_ms and c.decoder_ms > 0 for c in clicks), [c.decoder_ms for c in clicks]
    pts = [(c.payload["x"], c.payload["y"]) for c in clicks]
    steps = [(pts[: k + 1], [1, 0, 1][: k + 1]) for k in range(3)]
    _, stored = stored_mask(engine, mask_id)
    assert iou(stored, python_mask(engine, img["id"], steps)) >= 0.99
    assert_replay_matches(engine, img["id"], {session_of(page)})
