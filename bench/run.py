"""Run every benchmark and write bench/results/latest.json (`make bench`).

    .venv/bin/python -m bench.run [--only encoder,events] [--quick] [--out FILE]

Each benchmark module has `run(quick) -> dict` and measures its figure beside its anchor in the
same run. A benchmark that fails is recorded with its error and the others still run. The file
also records the machine (lscpu model line, cores, load average) and the git commit, because
these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BENCHMARKS = (  # key -> module in bench/
    "decoder_browser",
    "decoder_profile",
    "hover",
    "image_switch",
    "encoder",
    "embedding_bytes",
    "events",
    "coco_export",
)


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO).stdout.strip()
    except OSError:
        return ""


def machine() -> dict:
    """What the figures were measured on."""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in _run(["lscpu"]).splitlines() if ln.startswith("Model name")),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": _run(["git", "rev-parse", "--short", "HEAD"]),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_all(keys: list[str], quick: bool) -> dict:
    """Run the benchmarks in `keys` one after another; returns the whole results document."""
    results: dict = {"machine": machine(), "quick": quick}
    for key in keys:
        start = time.perf_counter()
        print(f"bench: {key} ...", file=sys.stderr, flush=True)
        try:
            results[key] = importlib.import_module(f"bench.{key}").run(quick=quick)
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not lose the others
            traceback.print_exc()
            results[key] = {"error": f"{type(exc).__name__}: {exc}"}
        results[key]["bench_seconds"] = round(time.perf_counter() - start, 1)
    results["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated keys (default: all)")
    p.add_argument("--quick", action="store_true", help="smoke-sized runs")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = p.parse_args(argv)
    keys = [k for k in args.only.split(",") if k] or list(BENCHMARKS)
    unknown = set(keys) - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results = run_all(keys, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 1 if any("error" in v for v in results.values() if isinstance(v, dict)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
