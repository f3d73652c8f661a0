"""Image switch benchmark (issue 6): from "next image" to the first mask possible.

A real server and headless Chromium (random-weight vit_b; timings do not depend on the weights),
~1 megapixel JPEG images. The annotate page is opened with prefetch off and on (?prefetch=0|1,
two projects holding the same images, so each mode starts from a fresh queue and a cold
browser cache), and the annotator presses N on each image in turn. Per switch: the page's own
switchMs (key press to the new image open with its embedding in the decoder, i.e. a click
decodes at once), the bench's wall time from the key press until the page reports it, the
part spent in POST finish + GET next, and the first click's decode after the switch. With
prefetch on the bench waits for the prefetch to finish before pressing N (an annotator spends
~30 s per image). Prints JSON {"image_switch": ...}: medians per mode.

    .venv/bin/python -m bench.image_switch [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "browser"))

from browser_harness import (  # noqa: E402
    Instance,
    body_data,
    embedding_info,
    launch_browser,
    logged_in_page,
    random_vit_b,
    setup_instance,
    start_server,
    stop_server,
    summary,
    switch_image,
    wait_prefetched,
    wait_ready,
)

WIDTH, HEIGHT = 1280, 800  # 1.02 megapixels
SETTLE_S = 0.5  # after each open: the first decode of the image and the page settle
EMBEDDING_PARTS = ("load", "fetch", "convert", "handoff")  # load = fetch + convert + handoff


def images(count: int) -> list[tuple[str, int, int, tuple]]:
    """`count` distinct ~1 MP JPEGs, each with its bright rectangle elsewhere."""
    return [
        (f"photo{i}.jpg", WIDTH, HEIGHT, (100 + 60 * i, 80 + 40 * i, 600 + 60 * i, 500 + 30 * i))
        for i in range(count)
    ]


def first_decode_ms(page) -> float:  # noqa: ANN001
    """Click the middle of the image, wait for its decode; the decode's milliseconds."""
    box = page.locator("[data-testid=canvas]").bounding_box()
    before = int(body_data(page, "decodeCount") or 0)
    page.mouse.click(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    page.wait_for_function(f"Number(document.body.dataset.decodeCount || 0) > {before}", timeout=60000)
    ms = float(body_data(page, "lastDecodeMs"))
    page.keyboard.press("Escape")
    page.wait_for_function("document.body.dataset.draftEntries === '0'", timeout=10000)
    return ms


ROUND_TRIPS = """() => {
    const all = performance.getEntriesByType("resource");
    const last = (re) => all.filter((e) => re.test(e.name)).pop();
    const ms = [last(/\\/finish$/), last(/\\/next$/)].reduce((t, e) => t + (e ? e.duration : NaN), 0);
    performance.clearResourceTimings();
    return ms;
}"""


def run_mode(browser, inst: Instance, project: str, prefetch: bool, switches: int) -> dict:  # noqa: ANN001
    context, page = logged_in_page(browser, inst)
    url = f"{inst.base_url}/projects/{inst.projects[project]}/annotate?prefetch={int(prefetch)}"
    page.goto(url)
    wait_ready(page, timeout_ms=120000)
    rows = []
    for _ in range(switches):
        if prefetch:
            wait_prefetched(page)
        time.sleep(SETTLE_S)
        t0 = time.perf_counter()
        switch_image(page, lambda: page.keyboard.press("n"))
        wall = (time.perf_counter() - t0) * 1000
        emb = embedding_info(page)
        rows.append(
            {
                "switch_ms": float(body_data(page, "switchMs")),
                "wall_ms": wall,
                "prefetched": body_data(page, "switchPrefetched") == "true",
                "round_trips_ms": page.evaluate(ROUND_TRIPS),
                "dtype": emb["dtype"],
                **{f"embedding_{k}_ms": emb[f"{k}Ms"] for k in EMBEDDING_PARTS},
                "first_decode_ms": first_decode_ms(page),
            }
        )
    out = {
        "switches": len(rows),
        "prefetched": sum(r["prefetched"] for r in rows),
        "switch_ms": summary([r["switch_ms"] for r in rows]),
        "wall_ms": summary([r["wall_ms"] for r in rows]),
        "finish_and_next_requests_ms": summary([r["round_trips_ms"] for r in rows]),
        "first_decode_ms": summary([r["first_decode_ms"] for r in rows]),
        "embedding_dtype": rows[-1]["dtype"],
        "decoder": f"{body_data(page, 'decoderBackend')} x{body_data(page, 'decoderThreads')}",
    }
    if not prefetch:  # the embedding's load inside the switch: fetch, float16 -> 32, to the worker
        out |= {f"embedding_{k}_ms": summary([r[f"embedding_{k}_ms"] for r in rows]) for k in EMBEDDING_PARTS}
    context.close()
    return out


def run(quick: bool = False) -> dict:
    """Prefetch off, then on; `quick`: 3 switches per mode instead of 7."""
    from playwright.sync_api import sync_playwright

    count = 4 if quick else 8
    pics = images(count)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-switch-") as tmp:
        inst = setup_instance(Path(tmp), random_vit_b(), {"off": pics, "on": pics}, embed=["off"])
        setup_s = time.perf_counter() - t0
        start_server(inst)
        try:
            with sync_playwright() as p:
                browser = launch_browser(p)
                modes = {
                    "prefetch_off": run_mode(browser, inst, "off", False, count - 1),
                    "prefetch_on": run_mode(browser, inst, "on", True, count - 1),
                }
                version = browser.version
                browser.close()
        finally:
            stop_server(inst)
    on, off = modes["prefetch_on"]["switch_ms"]["median"], modes["prefetch_off"]["switch_ms"]["median"]
    return {
        "switch_ms_prefetch_on": on,
        "switch_ms_prefetch_off": off,
        "target_ms": 300,
        "modes": modes,
        "image": {"width": WIDTH, "height": HEIGHT, "format": "JPEG"},
        "chromium": version,
        "setup_s": round(setup_s, 1),
        "quick": quick,
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    print(json.dumps({"image_switch": run(args.quick)}, indent=2))


if __name__ == "__main__":
    main()
