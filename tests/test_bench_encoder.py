"""`make bench`'s runner and the encoder benchmark, smoke-sized."""

from __future__ import annotations

import json
from pathlib import Path

from bench import run as bench_run


def test_bench_runner_writes_the_encoder_figures(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    assert bench_run.main(["--only", "encoder", "--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu"]
    enc = doc["encoder"]["bootstrap"]
    assert enc["ours_s_per_image"] > 0 and enc["official_s_per_image"] > 0
    assert enc["cosine_min"] >= 0.99 and enc["mask_iou_1click_min"] >= 0.97
    assert enc["stored_bytes_per_image"] > 0


def test_unknown_benchmark_is_refused(tmp_path: Path) -> None:
    try:
        bench_run.main(["--only", "nope", "--out", str(tmp_path / "x.json")])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("an unknown benchmark must be refused")
