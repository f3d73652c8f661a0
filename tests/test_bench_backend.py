"""The event-log and COCO export benchmarks, smoke-sized: their figures and their own checks."""

from __future__ import annotations

import json

import pytest

from bench import coco_export as coco_bench
from bench import events as events_bench


@pytest.mark.postgres
def test_events_bench_stores_every_acked_event_once() -> None:
    result = events_bench.run(quick=True)
    assert set(result) == {"sqlite", "postgresql"}
    for db, r in result.items():
        assert r["db"] == db and r["clients"] == 4
        assert r["events_acked"] > 0 and r["errors"] == [] and r["hung_threads"] == 0
        assert r["events_stored"] == r["events_acked"] == r["distinct_uuids"] == r["distinct_session_seq"]
        assert r["acked_all_stored"] is True
        assert r["events_per_s"] > 0
        assert 0 < r["ack_ms"]["p50"] <= r["ack_ms"]["p95"] <= r["ack_ms"]["p99"] <= r["ack_ms"]["max"]
        assert len(r["loadavg_before"]) == 3
    json.dumps(result)


def test_coco_export_bench_validates_both_exports() -> None:
    result = coco_bench.run(quick=True)
    assert result["masks"] == 2000 and result["accepted"] == 1900
    for key in ("ours", "anchor_pycocotools"):
        r = result[key]
        assert r["annotations"] == result["accepted"]
        assert r["seconds"] > 0 and r["peak_rss_mb"] > 0 and r["out_mb"] > 0
    assert result["targets"]["met"] is True
    json.dumps(result)
