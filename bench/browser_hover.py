"""Hover-preview benchmark: a real server and headless Chromium, random-weight vit_b.

While the pointer sweeps over the image (no prompt yet, so every position asks for a preview),
the page decodes the newest position only (hover lane of the decoder scheduler) and paints it.
Prints JSON: hover decodes per second sustained, the worker's decode time per preview, the main
thread's own work per preview (the annotator's redraw, timed), pointer moves delivered per
second, and the main thread's responsiveness over the sweep: the longest long task
(PerformanceObserver "longtask", tasks over 50 ms) and the longest gap between animation
frames. The same decoder and embedding in native onnxruntime (Python) are timed in the
same run as a yardstick of how loaded the machine is. Timings do not depend on the weights.

    .venv/bin/python -m bench.browser_hover [--seconds 10] [--threads 2,1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "browser"))

from browser_harness import (  # noqa: E402
    body_data,
    launch_browser,
    login,
    setup_instance,
    start_server,
    stop_server,
    wait_ready,
)

from bench.browser_click import IMAGE, native_reference, random_vit_b, summary  # noqa: E402

# Installed before the page's own scripts: long tasks and animation-frame gaps, from `start()`.
MONITOR = """
(() => {
  const m = { longtasks: [], gaps: [], on: false, last: 0 };
  window.__hoverBench = m;
  try {
    new PerformanceObserver((list) => {
      if (m.on) for (const e of list.getEntries()) m.longtasks.push(e.duration);
    }).observe({ type: "longtask", buffered: false });
  } catch (e) { m.noLongtask = String(e); }
  const frame = (t) => {
    if (m.on && m.last) m.gaps.push(t - m.last);
    m.last = t;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  m.paints = [];
  // The page's own work per preview: the annotator's redraw (mask + prompt layers), timed.
  m.hook = () => {
    const a = window.annotatorDebug.annotator;
    const redraw = a.redraw.bind(a);
    a.redraw = (...args) => {
      const t0 = performance.now();
      const r = redraw(...args);
      if (m.on) m.paints.push(performance.now() - t0);
      return r;
    };
  };
  m.start = () => { m.longtasks = []; m.gaps = []; m.paints = []; m.last = 0; m.on = true; };
  m.stop = () => {
    m.on = false;
    return { longtasks: m.longtasks, gaps: m.gaps, paints: m.paints, noLongtask: m.noLongtask || null };
  };
})();
"""


def sweep(page, box: dict, seconds: float, hz: float = 60.0) -> int:  # noqa: ANN001
    """Move the pointer over the image along a Lissajous curve for `seconds`; returns moves."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    ax, ay = box["width"] * 0.4, box["height"] * 0.4
    t0 = time.perf_counter()
    moves = 0
    while (elapsed := time.perf_counter() - t0) < seconds:
        s = elapsed * 0.7
        page.mouse.move(cx + ax * math.sin(2 * math.pi * s), cy + ay * math.sin(2 * math.pi * 1.3 * s + 0.5))
        moves += 1
        wait = moves / hz - (time.perf_counter() - t0)
        if wait > 0:
            time.sleep(wait)
    return moves


def run(browser, inst, threads: int, seconds: float) -> dict:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(MONITOR)
    page = context.new_page()
    login(page, inst.base_url)
    page.goto(f"{inst.base_url}/projects/{inst.projects['bench']}/annotate?threads={threads}")
    wait_ready(page, timeout_ms=120000)
    box = page.locator("[data-testid=canvas]").bounding_box()
    page.evaluate("window.__hoverBench.hook()")
    sweep(page, box, 2.0)  # warm-up: first decodes, JIT
    decoded0 = int(body_data(page, "hoverDecodes") or 0)
    page.evaluate("window.__hoverBench.start()")
    samples = []
    t0 = time.perf_counter()
    moves = 0
    while time.perf_counter() - t0 < seconds:
        moves += sweep(page, box, 1.0)
        samples.append(float(body_data(page, "lastHoverMs") or "nan"))
    elapsed = time.perf_counter() - t0
    mon = page.evaluate("window.__hoverBench.stop()")
    decoded = int(body_data(page, "hoverDecodes") or 0) - decoded0
    info = {
        "threads": int(body_data(page, "decoderThreads")),
        "backend": body_data(page, "decoderBackend"),
        "cross_origin_isolated": page.evaluate("crossOriginIsolated"),
        "seconds": round(elapsed, 2),
        "pointer_moves_per_s": round(moves / elapsed, 1),
        "hover_decodes_per_s": round(decoded / elapsed, 2),
        "hover_decode_ms_sampled": summary([s for s in samples if s == s]),
        "main_thread_ms_per_preview": summary(mon["paints"]) if mon["paints"] else None,
        "longest_long_task_ms": round(max(mon["longtasks"], default=0.0), 1),
        "long_tasks": len(mon["longtasks"]),
        "longest_frame_gap_ms": round(max(mon["gaps"], default=0.0), 1),
        "frame_gap_p95_ms": round(sorted(mon["gaps"])[int(0.95 * (len(mon["gaps"]) - 1))], 1)
        if mon["gaps"]
        else None,
        "median_frame_gap_ms": round(statistics.median(mon["gaps"]), 1) if mon["gaps"] else None,
        "display_size": [round(box["width"]), round(box["height"])],
    }
    if mon["noLongtask"]:
        info["longtask_observer"] = mon["noLongtask"]
    context.close()
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", default="2,1", help="comma-separated WASM thread counts")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-hover-") as tmp:
        inst = setup_instance(Path(tmp), random_vit_b(), {"bench": [IMAGE]})
        start_server(inst)
        try:
            with sync_playwright() as p:
                browser = launch_browser(p)
                runs = [run(browser, inst, int(t), args.seconds) for t in args.threads.split(",")]
                version = browser.version
                browser.close()
            native = native_reference(inst, 20)
        finally:
            stop_server(inst)
    result = {
        "bench": "browser_hover",
        "model": "vit_b random weights, decoder fp32 ONNX (low-res outputs only)",
        "image": {"width": IMAGE[1], "height": IMAGE[2]},
        "chromium": version,
        "machine": platform.processor() or platform.machine(),
        "runs": runs,
        "native_onnxruntime_same_run": native,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
