"""Where a click's decode goes: onnxruntime-web's own per-node profile of the per-click graph.

The page's default decoder (the split graphs, annotator_backend/decoder_split.py) is exported
from a random-weight vit_b and run in headless Chromium by onnxruntime-web, in a module worker of
a cross-origin isolated page, as decoder_worker.js runs it: the per-image graph once, then the
per-click graph for prompts without a mask input, for a single positive click (what a first
click and a hover preview run). Once plain (`decode_ms`, p50 over the runs), once with the session's
profiling on: the node timings are summed per operator type and per node (ms per run, medians
over the runs after a warm-up), with each node's output shape, which says what it computes.
Profiling adds its own cost, so the node times add up to more than `decode_ms`.

    .venv/bin/python -m bench.decoder_profile [--threads 2] [--runs 30]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import statistics
import sys
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ORT_DIR = REPO / "static" / "vendor" / "ort"
WARMUP = 5

PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
const q = new URLSearchParams(location.search);
const w = new Worker("worker.js", {type: "module"});
w.onmessage = (e) => { window.result = e.data; document.title = "done"; };
const n = (k) => Number(q.get(k));
w.postMessage({threads: n("threads"), runs: n("runs"), profile: q.get("profile") === "1"});
</script>"""

WORKER = """
self.onmessage = async (e) => {
  const {threads, runs, profile} = e.data;
  try {
    const ort = (await import("/ort/ort.wasm.min.mjs")).default;
    ort.env.wasm.wasmPaths = "/ort/";
    ort.env.wasm.numThreads = threads;
    const bytes = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
    const opts = {graphOptimizationLevel: "all"};
    // onnxruntime-web prints the profile with the console.log its WASM module took when it was
    // instantiated (at the first session): capture it from before then.
    const logs = [];
    const log = console.log;
    if (profile) console.log = (...a) => logs.push(a.join(" "));
    const prepare = await ort.InferenceSession.create(await bytes("prepare.onnx"), opts);
    const decodeOpts = {...opts, enableProfiling: profile};
    const decode = await ort.InferenceSession.create(await bytes("decode.onnx"), decodeOpts);
    const emb = new Float32Array((await bytes("embedding.bin")).buffer);
    const feeds = await prepare.run({image_embeddings: new ort.Tensor("float32", emb, [1, 256, 64, 64])});
    feeds.point_labels = new ort.Tensor("float32", new Float32Array([1, -1]), [1, 2]);
    const times = [];
    for (let i = 0; i < runs; i++) {
      const xy = new Float32Array([300 + 20 * (i % 9), 400, 0, 0]);
      feeds.point_coords = new ort.Tensor("float32", xy, [1, 2, 2]);
      const t = performance.now();
      await decode.run(feeds);
      times.push(performance.now() - t);
    }
    if (profile) decode.endProfiling();
    console.log = log;
    self.postMessage({times, profile: logs.join("")});
  } catch (err) {
    self.postMessage({error: String(err)});
  }
};
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the headers that let onnxruntime-web use threads; /ort/ is the vendored
    runtime."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
    }

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/ort/"):
            return str(ORT_DIR / Path(path[5:]).name)
        return super().translate_path(path)

    def log_message(self, *args: object) -> None:
        pass


def write_site(folder: Path) -> None:
    """The page, its worker, the split decoder of a random vit_b and a random embedding."""
    sys.path.insert(0, str(REPO / "tests" / "browser"))
    from browser_harness import random_vit_b

    from annotator_backend.onnx_export import export_split
    from annotator_backend.sam_factory import load_sam

    (folder / "index.html").write_text(PAGE)
    (folder / "worker.js").write_text(WORKER)
    names = ("prepare.onnx", "split.onnx", "decode.onnx")  # decode: the graph without mask input
    export_split(load_sam(random_vit_b(), "vit_b"), *(folder / n for n in names))
    emb = np.random.default_rng(0).standard_normal((1, 256, 64, 64)).astype(np.float32) * 0.3
    emb.tofile(folder / "embedding.bin")


def _shapes(outputs: list[dict]) -> str:
    """[{"float": [4096, 256]}] -> "float[4096,256]"."""
    return " ".join(f"{t}[{','.join(map(str, d))}]" for o in outputs for t, d in o.items())


def summarize(trace: list[dict], runs: int, top: int) -> dict:
    """Per-op-type and per-node ms per decode (medians over the runs after the warm-up)."""
    run_events = [e for e in trace if e.get("name") == "model_run"][WARMUP:]
    per_node: dict[str, list[float]] = defaultdict(list)
    info: dict[str, tuple[str, object]] = {}
    nodes = [e for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    for run in run_events:
        t0, t1 = run["ts"], run["ts"] + run["dur"]
        for e in nodes:
            if t0 <= e["ts"] <= t1:
                name = e["name"].removesuffix("_kernel_time")
                per_node[name].append(e["dur"] / 1000)
                info[name] = (e["args"]["op_name"], _shapes(e["args"].get("output_type_shape", [])))
    node_ms = {n: statistics.median(v) for n, v in per_node.items()}
    by_op: dict[str, float] = defaultdict(float)
    for n, ms in node_ms.items():
        by_op[info[n][0]] += ms
    ranked = sorted(node_ms.items(), key=lambda kv: -kv[1])
    return {
        "profiled_run_ms_p50": round(statistics.median(e["dur"] for e in run_events) / 1000, 2),
        "nodes": len(node_ms),
        "node_ms_total": round(sum(node_ms.values()), 2),
        "by_op_ms": {k: round(v, 2) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1]) if v >= 0.05},
        "top_nodes": [
            {"node": n, "op": info[n][0], "output": info[n][1], "ms": round(ms, 2)} for n, ms in ranked[:top]
        ],
        "small_nodes_ms": round(sum(ms for _, ms in ranked[top:]), 2),
    }


def measure(folder: Path, threads: int, runs: int, top: int) -> dict:
    """Serve `folder`, run the page twice (plain, profiled) in headless Chromium."""
    sys.path.insert(0, str(REPO / "tests" / "browser"))
    from browser_harness import launch_browser
    from playwright.sync_api import sync_playwright

    handler = functools.partial(_Handler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/index.html?threads={threads}&runs={runs}"
    results = {}
    try:
        with sync_playwright() as p:
            browser = launch_browser(p)
            try:
                for profile in (False, True):
                    page = browser.new_page()
                    page.goto(f"{base}&profile={int(profile)}")
                    page.wait_for_function("document.title === 'done'", timeout=300000)
                    results[profile] = page.evaluate("window.result")
                    page.close()
            finally:
                browser.close()
    finally:
        server.shutdown()
    for r in results.values():
        if "error" in r:
            raise RuntimeError(r["error"])
    times = results[False]["times"][WARMUP:]
    out = {
        "threads": threads,
        "runs": runs - WARMUP,
        "prompt": "one positive click, no mask input",
        "decode_ms_p50": round(statistics.median(times), 2),
        "decode_ms_min": round(min(times), 2),
    }
    out.update(summarize(json.loads(results[True]["profile"]), runs, top))
    return out


def run(quick: bool = False, threads: int = 2, runs: int | None = None, top: int = 15) -> dict:
    """The benchmark's result (bench/run.py's interface)."""
    runs = runs or (8 if quick else 30)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_site(folder)
        return {"graph": "nomask (per-click, no mask input)", **measure(folder, threads, runs, top)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    print(json.dumps(run(threads=args.threads, runs=args.runs, top=args.top), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
