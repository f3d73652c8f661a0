"""RITM-protocol evaluation: click placement, NoC/mIoU bookkeeping, ignore pixels, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator_backend.decoding import ISLAND_LOGIT, Prompt, drop_islands
from annotator_backend.evaluation import (
    EvalConfig,
    click_session,
    evaluate,
    mask_iou,
    next_click,
    noc,
    summarize,
)
from annotator_backend.sam_factory import build_sam

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def square(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_first_click_is_object_centre() -> None:
    gt = square(40, 50, 10, 31, 20, 41)  # 21x21 square, centre pixel (30, 20)
    click = next_click(np.zeros_like(gt), gt)
    assert click == (30.5, 20.5, True)


def test_image_border_counts_as_boundary() -> None:
    gt = square(20, 40, 0, 20, 0, 10)  # touches the border: its centre is not at the border
    x, y, positive = next_click(np.zeros_like(gt), gt)
    assert positive and 3 <= x <= 7 and 3 <= y <= 17


def test_negative_click_in_largest_extra_region() -> None:
    gt = square(60, 60, 10, 30, 10, 30)
    pred = gt.copy()
    pred[40:58, 35:58] = True  # a large false positive
    pred[10:12, 10:30] = False  # a thin miss
    x, y, positive = next_click(pred, gt)
    assert not positive and pred[int(y), int(x)] and not gt[int(y), int(x)]
    assert 44 <= y <= 54 and 40 <= x <= 52
    assert next_click(gt, gt) is None


def test_ignore_pixels_left_out() -> None:
    gt = square(10, 10, 0, 5, 0, 10)
    pred = square(10, 10, 0, 6, 0, 10)
    ignore = square(10, 10, 5, 6, 0, 10)
    assert mask_iou(pred, gt) == pytest.approx(50 / 60)
    assert mask_iou(pred, gt, ignore) == 1.0
    assert next_click(pred, gt, ignore) is None


def test_noc_and_miou() -> None:
    cfg = EvalConfig(max_clicks=5, miou_at=(1, 3))
    a = [0.5, 0.86, 0.88, 0.91, 0.95]
    b = [0.2, 0.3, 0.4, 0.5, 0.6]
    assert noc(a, 0.85, 5) == 2 and noc(a, 0.90, 5) == 4 and noc(b, 0.85, 5) == 5
    s = summarize([a, b], cfg)
    assert s["NoC@85"] == pytest.approx(3.5) and s["NoC@90"] == pytest.approx(4.5)
    assert s["mIoU@1"] == pytest.approx(0.35) and s["mIoU@3"] == pytest.approx(0.64)
    assert s["objects"] == 2


def _two_islands() -> np.ndarray:
    """Logits [4, 256, 256]: output 0 has islands at cells x 10..19 and 100..109 (rows 10..19)
    that touch only diagonally across nothing; outputs 1..3 one island each."""
    m = np.full((4, 256, 256), -2.0, np.float32)
    m[:, 10:20, 10:20] = 3.0
    m[0, 10:20, 100:110] = 2.0
    m[0, 20, 20] = 1.0  # joins the first island diagonally: 8-connected
    return m


def _prompt(points: list[tuple[float, float]], labels: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([points], np.float32), np.array([labels], np.float32)


def test_drop_islands_keeps_what_the_prompt_touches() -> None:
    m = _two_islands()
    out = drop_islands(m, *_prompt([(60.0, 60.0), (0.0, 0.0)], [1, -1]))  # cell (15, 15)
    assert (out[0, 10:20, 100:110] == ISLAND_LOGIT).all()
    assert (out[0, 10:20, 10:20] == 3.0).all() and out[0, 20, 20] == 1.0
    assert np.array_equal(out[1:], m[1:]) and out[0, 0, 0] == -2.0
    assert np.array_equal(m, _two_islands())  # the input is not modified
    both = drop_islands(m, *_prompt([(60.0, 60.0), (420.0, 60.0)], [1, 1]))
    assert np.array_equal(both, m)


def test_drop_islands_box_negatives_and_misses() -> None:
    m = _two_islands()
    box = drop_islands(m, *_prompt([(380.0, 0.0), (1000.0, 100.0)], [2, 3]))  # meets the second
    assert (box[0, 10:20, 10:20] == ISLAND_LOGIT).all() and (box[0, 10:20, 100:110] == 2.0).all()
    assert drop_islands(m, *_prompt([(60.0, 60.0)], [0])) is m  # negatives only: no rule
    assert drop_islands(m, *_prompt([(800.0, 800.0)], [1])) is m  # touches nothing: unchanged
    prev = np.full((256, 256), -5.0, np.float32)
    prev[12, 104] = 0.5  # the previous step showed a cell of the second island
    kept = drop_islands(m, *_prompt([(60.0, 60.0)], [0]), mask_input=prev)
    assert (kept[0, 10:20, 10:20] == ISLAND_LOGIT).all() and (kept[0, 10:20, 100:110] == 2.0).all()
    assert (kept[1:, 10:20, 10:20] == 3.0).all()  # touched by nothing there: unchanged


def test_click_session_follows_protocol_with_fake_decoder() -> None:
    """A fake decoder: first click -> the object plus a big extra blob; then the exact object."""
    gt = square(64, 64, 8, 41, 8, 41)  # odd side: one centre pixel (24, 24)
    blob = square(64, 64, 44, 64, 30, 64)
    seen: list[tuple[list, list, bool]] = []

    def decode(prompt: Prompt, prev: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        seen.append((list(prompt.points), list(prompt.labels), prev is not None))
        mask = gt | blob if len(prompt.points) == 1 else gt
        return np.full((256, 256), len(prompt.points), np.float32), mask

    cfg = EvalConfig(max_clicks=20, stop_at_iou=None)
    ious, clicks = click_session(decode, gt, None, cfg)
    assert clicks[0] == (24.5, 24.5, True)  # centre of the object
    assert clicks[1][2] is False and blob[int(clicks[1][1]), int(clicks[1][0])]  # negative, in the blob
    assert len(clicks) == 2  # perfect after 2: no more clicks
    assert ious[0] == pytest.approx(gt.sum() / (gt | blob).sum()) and ious[1:] == [1.0] * 19
    assert seen[0][2] is False and seen[1][2] is True  # previous logits fed back from the 2nd click
    assert seen[1][1] == [1, 0]
    s = summarize([ious], cfg)
    assert s["NoC@85"] == 2 and s["NoC@90"] == 2 and s["mIoU@1"] == pytest.approx(ious[0])

    seen.clear()
    click_session(decode, gt, None, EvalConfig(feed_mask=False, stop_at_iou=None))
    assert not any(fed for *_, fed in seen)

    ious, clicks = click_session(decode, gt, None, EvalConfig(stop_at_iou=0.9, max_clicks=20))
    assert len(clicks) == 2 and len(ious) == 20 and ious[-1] == 1.0  # stopped early, IoU carried over


def _synthetic_folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "ignore").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        m = square(48, 64, 10, 30, 12 + i, 40)
        img[m] = (250, 20, 20)
        Image.fromarray(img).save(root / "images" / f"im{i}.png")
        Image.fromarray(m.astype(np.uint8) * 255).save(root / "masks" / f"im{i}_0.png")
        Image.fromarray(square(48, 64, 29, 31, 0, 64).astype(np.uint8) * 255).save(
            root / "ignore" / f"im{i}.png"
        )
    return root


def test_evaluate_end_to_end_with_onnx_decoder(tmp_path: Path) -> None:
    model = build_sam("bootstrap")
    res = evaluate(model, _synthetic_folder(tmp_path / "set"), cfg=EvalConfig(max_clicks=3), per_object=True)
    json.dumps(res)
    s = res["summary"]
    assert s["objects"] == 2 and 1 <= s["NoC@90"] <= 3 and 0 <= s["mIoU@1"] <= 1
    assert res["settings"]["feed_mask"] is True and res["settings"]["max_clicks"] == 3
    assert len(res["objects"][0]["ious"]) == 3


@pytest.mark.skipif(not (DATASETS / "grabcut").is_dir(), reason=f"shared datasets not found at {DATASETS}")
def test_evaluate_on_grabcut_one_image() -> None:
    res = evaluate(build_sam("bootstrap"), DATASETS / "grabcut", limit=1, cfg=EvalConfig(max_clicks=2))
    assert res["dataset"] == "grabcut" and res["summary"]["objects"] == 1
