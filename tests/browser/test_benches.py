"""The browser benchmarks run (smoke size) and report their figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser_harness import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} not installed"),
]


def _run_quick(module: str) -> dict:
    """`bench.<module>.run(quick=True)` in a child process: Playwright's sync API cannot start a
    second browser inside the asyncio loop of the session's own browser."""
    code = f"import json, bench.{module} as b; print(json.dumps(b.run(quick=True)))"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _stats(s: dict) -> None:
    assert set(s) == {"p50", "p95", "min", "max", "n"} and s["n"] >= 1
    assert 0 < s["min"] <= s["p50"] <= s["p95"] <= s["max"]


def test_decoder_browser_quick() -> None:
    result = _run_quick("decoder_browser")
    assert result["pipelines"] == {"ours": "split", "official": "official"}
    run, dwell = result["runs"]
    assert run["image"] == "0.3MP" and run["threads"] == 1 and not run["hover_preview"]
    assert dwell["hover_preview"] and dwell["dwell_ms"] > 0
    assert set(dwell["pipelines"]) == {"ours", "official"}
    _stats(dwell["pipelines"]["ours"]["click_to_paint_ms"])
    for name, fmt in (("ours", "split"), ("official", "official")):
        p = run["pipelines"][name]
        assert p["backend"] == "wasm" and p["format"] == fmt and p["isolated"] is True
        _stats(p["click_to_paint_ms"])
        _stats(p["decode_ms"])
        assert p["click_to_paint_ms"]["p50"] >= p["decode_ms"]["min"]
    assert run["ours_over_official_p50"] > 0
    for name in ("ours", "ours_whole", "ours_int8", "official"):
        _stats(result["native_onnxruntime_same_run"][f"{name}_decode_ms"])


def test_hover_quick() -> None:
    result = _run_quick("hover")
    (run,) = result["runs"]
    assert run["pipeline"] == "ours" and run["decodes_per_s"] > 0
    assert run["longest_frame_gap_ms"] > 0 and run["long_tasks"] >= 0
    _stats(run["main_thread_ms_per_redraw"])
    assert set(result["target"]) >= {"ours_decodes_per_s", "ours_longest_stall_ms", "met"}


def test_decoder_profile_quick() -> None:
    result = _run_quick("decoder_profile")
    assert result["threads"] == 2 and result["runs"] >= 1 and result["decode_ms_p50"] > 0
    assert result["nodes"] > 100 and result["node_ms_total"] > 0
    # the output upscaling's matmuls and GELUs are in every decode
    assert {"MatMul", "Gelu", "LayerNormalization"} <= set(result["by_op_ms"])
    top = result["top_nodes"]
    assert top and all(a["ms"] >= b["ms"] for a, b in zip(top, top[1:], strict=False))
    assert all(n["output"].startswith("float[") for n in top)
