"""A scripted annotation session in headless Chromium (random-weight vit_b), then the event log.

The script makes eight masks the ways an annotator does: hover then click, click + negative
click (with a wrong click undone), box, box + point, click + another multimask candidate,
brush and eraser only, click + brush fix, and an edit of an accepted mask; it also changes a
category and deletes a mask. Between actions it waits `--think` seconds. Prints JSON: events per
accepted mask, events by type, active seconds per mask (Mask.active_ms) and per image
(AnnotationSession.active_ms), the session's wall time, and the replay IoU of every mask.

    .venv/bin/python -m bench.browser_session [--think 0.6] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "browser"))

from browser_harness import (  # noqa: E402
    body_data,
    launch_browser,
    login,
    random_vit_b,
    setup_instance,
    start_server,
    stop_server,
)
from page_helpers import (  # noqa: E402
    accept,
    assert_replay_matches,
    click_image,
    decode_count,
    drag,
    events_of,
    open_annotate,
    to_screen,
    wait_decodes,
    wait_synced,
)

IMAGE = ("bench.png", 640, 480, (160, 120, 480, 360))


def script(page, img: dict, think: float) -> None:  # noqa: ANN001
    """The annotator's actions; every mask accepted with Shift+Enter (random masks overlap)."""

    def pause() -> None:
        time.sleep(think)

    w, h = img["w"], img["h"]
    at = lambda fx, fy: (fx * w, fy * h)  # noqa: E731
    ok = lambda: accept(page, "Shift+Enter")  # noqa: E731
    # 1: hover, then click where the preview was shown
    x, y = to_screen(page, img, *at(0.3, 0.3))
    page.mouse.move(x, y)
    page.wait_for_function("Number(document.body.dataset.hoverDecodes || 0) >= 1", timeout=60000)
    before = decode_count(page)
    page.mouse.click(x, y)
    wait_decodes(page, before)
    pause()
    ok()
    pause()
    # 2: click, a wrong click undone, a negative click
    click_image(page, img, *at(0.6, 0.4))
    pause()
    click_image(page, img, *at(0.9, 0.9))
    page.keyboard.press("Control+z")
    pause()
    click_image(page, img, *at(0.7, 0.5), button="right")
    pause()
    ok()
    pause()
    # 3: box; 4: box + point
    for k, (a, b) in enumerate((((0.1, 0.55), (0.35, 0.9)), ((0.5, 0.1), (0.8, 0.35)))):
        before = decode_count(page)
        drag(page, img, at(*a), at(*b))
        wait_decodes(page, before)
        pause()
        if k == 1:
            click_image(page, img, *at(0.65, 0.2))
            pause()
        ok()
        pause()
    # 5: click, then another multimask candidate
    click_image(page, img, *at(0.45, 0.75))
    pause()
    page.keyboard.press("m")
    pause()
    ok()
    pause()
    # 6: brush and eraser only
    page.keyboard.press("b")
    drag(page, img, at(0.05, 0.05), at(0.2, 0.1))
    pause()
    drag(page, img, at(0.05, 0.12), at(0.2, 0.15))
    pause()
    page.keyboard.press("e")
    drag(page, img, at(0.12, 0.02), at(0.12, 0.2), steps=5)
    pause()
    ok()
    pause()
    # 7: click, then a brush fix
    page.keyboard.press("p")
    click_image(page, img, *at(0.85, 0.6))
    pause()
    page.keyboard.press("b")
    drag(page, img, at(0.8, 0.55), at(0.95, 0.7))
    pause()
    ok()
    pause()
    # 8: edit mask 6 (brush-only) from the list, erase a bit of it
    page.locator("[data-testid=mask-row] .mask-edit").nth(5).click()
    pause()
    page.keyboard.press("e")
    drag(page, img, at(0.16, 0.02), at(0.16, 0.2), steps=5)
    pause()
    ok()
    pause()
    page.keyboard.press("p")
    # a category change and a deletion
    page.locator("[data-testid=mask-row] select").nth(0).select_option(index=1)
    pause()
    page.locator("[data-testid=mask-row] .mask-delete").nth(2).click()
    wait_synced(page)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--think", type=float, default=0.6, help="seconds between actions")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from annotator_backend.models import AnnotationSession, Mask

    with tempfile.TemporaryDirectory(prefix="bench-session-") as tmp:
        inst = setup_instance(Path(tmp), random_vit_b(), {"bench": [IMAGE]})
        start_server(inst)
        engine = create_engine(inst.db_url)
        try:
            with sync_playwright() as p:
                browser = launch_browser(p)
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                login(page, inst.base_url)
                img = open_annotate(page, inst, "bench")
                t0 = time.perf_counter()
                script(page, img, args.think)
                wall = time.perf_counter() - t0
                session = body_data(page, "session")
                events = events_of(engine, page)
                browser.close()
            ious = assert_replay_matches(engine, img["id"], {session})
            with Session(engine) as s:
                ann = s.scalars(select(AnnotationSession).where(AnnotationSession.client_id == session)).one()
                masks = list(s.scalars(select(Mask).where(Mask.session_id == ann.id).order_by(Mask.id)))
                live = [m for m in masks if m.status == "accepted"]
                image_active_s = ann.active_ms / 1000
                per_mask = [m.active_ms / 1000 for m in masks]
                clicks = [m.clicks for m in masks]
                strokes = [m.strokes for m in masks]
        finally:
            engine.dispose()
            stop_server(inst)
    decode_ms = [e.decoder_ms for e in events if e.decoder_ms]
    result = {
        "bench": "browser_session",
        "think_s": args.think,
        "session_wall_s": round(wall, 1),
        "events": len(events),
        "events_by_type": dict(Counter(e.type for e in events)),
        "accept_events": sum(e.type == "accept" for e in events),
        "masks_accepted_at_end": len(live),
        "events_per_accept": round(len(events) / max(1, sum(e.type == "accept" for e in events)), 2),
        "events_per_accepted_mask": round(len(events) / max(1, len(live)), 2),
        "active_s_per_mask": {
            "mean": round(statistics.mean(per_mask), 2),
            "median": round(statistics.median(per_mask), 2),
            "each": [round(v, 2) for v in per_mask],
        },
        "clicks_per_mask": clicks,
        "strokes_per_mask": strokes,
        "image_active_s": round(image_active_s, 2),
        "decoder_ms_median": round(statistics.median(decode_ms), 1) if decode_ms else None,
        "replay_iou_min": round(min(ious.values()), 4),
        "replay_masks": len(ious),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
