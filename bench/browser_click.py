"""Browser click benchmark: a real server and headless Chromium, random-weight vit_b.

Prints JSON: seconds from opening the annotate page to decoderReady and to the first mask
painted, and per-click decode time (onnxruntime-web in the worker) and click-to-paint time
(pointerup to the overlay's putImageData) over N single-click prompts, for 2 and 1 WASM
threads. Timings do not depend on the weights.

    .venv/bin/python -m bench.browser_click [--clicks 20] [--threads 2,1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
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

CACHE = Path(tempfile.gettempdir()) / "sam-annotator-bench"
IMAGE = ("bench.png", 640, 480, (160, 120, 480, 360))


def random_vit_b() -> Path:
    """A random-weight vit_b checkpoint in the official format, cached between runs."""
    path = CACHE / "sam_vit_b_random_seed0.pth"
    if not path.exists():
        import torch
        from segment_anything import sam_model_registry

        CACHE.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        tmp = path.with_suffix(".tmp")
        torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), tmp)
        tmp.replace(path)
    return path


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(pct(values, 0.95), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def native_reference(inst, clicks: int) -> dict:  # noqa: ANN001
    """The same decoder file and embedding in native onnxruntime (Python), same prompts,
    measured in the same run: a yardstick for how loaded the machine is."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from annotator_backend.decoding import OnnxDecoder, Prompt
    from annotator_backend.embeddings import load_embedding
    from annotator_backend.model_registry import ensure_onnx
    from annotator_backend.models import Embedding, ModelVersion

    engine = create_engine(inst.db_url)
    with Session(engine) as s:
        mv = s.scalars(select(ModelVersion).where(ModelVersion.is_active)).one()
        emb = load_embedding(Path(s.scalars(select(Embedding)).first().path))
        onnx = ensure_onnx(mv)
    engine.dispose()
    w, h = IMAGE[1], IMAGE[2]
    out = {}
    for threads in (1, 2):
        dec = OnnxDecoder(onnx, threads=threads)
        times = []
        for i in range(clicks + 3):
            t = time.perf_counter()
            dec.predict(emb, Prompt(points=[(w * (0.3 + 0.02 * i), h / 2)], labels=[1]), w, h)
            times.append((time.perf_counter() - t) * 1000)
        out[f"{threads}_threads_decode_ms"] = summary(times[3:])
    return out


def open_page(browser, inst, threads: int, clicks: int) -> dict:  # noqa: ANN001
    """Open the annotate page in a fresh context; time ready and first mask, then `clicks`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    login(page, inst.base_url)
    url = f"{inst.base_url}/projects/{inst.projects['bench']}/annotate?threads={threads}"
    t0 = time.perf_counter()
    page.goto(url)
    wait_ready(page, timeout_ms=120000)
    t_ready = time.perf_counter() - t0
    box = page.locator("[data-testid=canvas]").bounding_box()
    decode_ms, paint_ms = [], []
    t_first = None
    for i in range(clicks + 1):  # click 0: the "first mask" figure, not in the per-click stats
        fx = 0.3 + 0.4 * ((i * 7) % 11) / 10
        fy = 0.3 + 0.4 * ((i * 5) % 7) / 6
        before = int(body_data(page, "decodeCount") or 0)
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.wait_for_function(f"Number(document.body.dataset.decodeCount || 0) > {before}", timeout=60000)
        if i == 0:
            t_first = time.perf_counter() - t0
        else:
            decode_ms.append(float(body_data(page, "lastDecodeMs")))
            paint_ms.append(float(body_data(page, "lastPaintMs")))
        page.keyboard.press("Escape")  # next click is again a single-click (multimask) prompt
    info = {
        "backend": body_data(page, "decoderBackend"),
        "threads": int(body_data(page, "decoderThreads")),
        "cross_origin_isolated": page.evaluate("crossOriginIsolated"),
        "ready_s": t_ready,
        "first_mask_s": t_first,
        "in_page_ms": {
            "next_image_json": float(body_data(page, "nextMs")),
            "decoder_init_in_worker": float(body_data(page, "decoderLoadMs")),
            "embedding_fetch": float(body_data(page, "embeddingMs")),
            "ready_since_navigation_start": float(body_data(page, "readyMs")),
        },
        "decode_ms": decode_ms,
        "paint_ms": paint_ms,
        "display_size": [round(box["width"]), round(box["height"])],
    }
    context.close()
    return info


def run_threads(browser, inst, threads: int, clicks: int, opens: int) -> dict:  # noqa: ANN001
    pages = [open_page(browser, inst, threads, clicks if k == opens - 1 else 0) for k in range(opens)]
    last = pages[-1]
    return {
        "threads_requested": threads,
        "backend": last["backend"],
        "threads": last["threads"],
        "cross_origin_isolated": last["cross_origin_isolated"],
        "page_opens": opens,
        "page_open_to_ready_s": summary([p["ready_s"] for p in pages]),
        "page_open_to_first_mask_s": summary([p["first_mask_s"] for p in pages]),
        "in_page_ms_last_open": last["in_page_ms"],
        "decode_ms": summary(last["decode_ms"]),
        "click_to_paint_ms": summary(last["paint_ms"]),
        "display_size": last["display_size"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--threads", default="2,1", help="comma-separated WASM thread counts")
    ap.add_argument("--opens", type=int, default=3, help="page opens per thread count (ready time)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        t0 = time.perf_counter()
        inst = setup_instance(Path(tmp), random_vit_b(), {"bench": [IMAGE]})
        setup_s = time.perf_counter() - t0
        native = native_reference(inst, args.clicks)
        start_server(inst)
        try:
            with sync_playwright() as p:
                browser = launch_browser(p)
                runs = [
                    run_threads(browser, inst, int(t), args.clicks, args.opens)
                    for t in args.threads.split(",")
                ]
                version = browser.version
                browser.close()
        finally:
            stop_server(inst)
    result = {
        "bench": "browser_click",
        "model": "vit_b random weights, decoder fp32 ONNX (low-res outputs only)",
        "image": {"width": IMAGE[1], "height": IMAGE[2]},
        "chromium": version,
        "machine": platform.processor() or platform.machine(),
        "setup_cli_s": {k: v for k, v in inst.timings} | {"total": round(setup_s, 1)},
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
