"""The click rule (annotator_backend/click_rule.py): every point ends on its label's side."""

from __future__ import annotations

import numpy as np

from annotator_backend.click_rule import MARGIN, RADIUS, enforce_clicks
from annotator_backend.decoding import finish_masks
from annotator_backend.edge_snap import image_guide


def _prompt(points: list[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray]:
    coords = np.array([[[x, y] for x, y, _ in points]], np.float32)
    return coords, np.array([[v for *_, v in points]], np.float32)


def test_a_point_on_the_wrong_side_gets_a_local_bump() -> None:
    masks = np.full((4, 256, 256), -3.0, np.float32)
    coords, labels = _prompt([(402.0, 101.0, 1), (0.0, 0.0, -1)])  # cell (100, 25), padding
    out = enforce_clicks(masks, coords, labels, [0])
    assert out is not masks and np.array_equal(masks, np.full_like(masks, -3.0))
    assert out[0, 25, 100] == MARGIN  # -3 + (3 + MARGIN)
    changed = np.argwhere(out[0] != -3.0)
    assert changed.min(0).tolist() == [25 - RADIUS, 100 - RADIUS]
    assert changed.max(0).tolist() == [25 + RADIUS, 100 + RADIUS]
    assert out[0, 25, 100 + RADIUS + 1] == -3.0  # cut at the radius
    assert np.array_equal(out[1:], masks[1:])  # only the listed outputs
    assert np.all(np.diff(out[0, 25, 100:]) <= 0)  # a bump, falling off from the click


def test_honoured_points_boxes_and_padding_change_nothing() -> None:
    masks = np.full((4, 256, 256), -2.0, np.float32)
    masks[:, 100:120, 100:120] = 5.0
    coords, labels = _prompt([(440.0, 440.0, 1), (100.0, 100.0, 0), (4.0, 4.0, 2), (1000.0, 1000.0, 3)])
    assert enforce_clicks(masks, coords, labels, [0, 1, 2, 3]) is masks


def test_negative_points_and_borders() -> None:
    masks = np.full((1, 256, 256), 2.0, np.float32)
    coords, labels = _prompt([(1023.9, 0.0, 0), (1020.0, 2.0, 1)])  # both in corner cells
    out = enforce_clicks(masks, coords, labels, [0])
    # in prompt order: the negative point pushes its cell to -MARGIN, which puts the positive
    # point (same cell) on the wrong side again, so it is pushed back to +MARGIN
    assert out[0, 0, 255] == MARGIN
    assert out[0, 0, 255 - RADIUS] != 2.0 and out[0, RADIUS + 1, 255] == 2.0
    assert out[0, 0, 255 - RADIUS - 1] == 2.0


def test_finish_masks_keeps_the_clicks_through_edge_snapping() -> None:
    """After the islands rule, the bump, snapping and the second pass every clicked cell of the
    shown outputs has its label's sign; the other outputs are left as the islands rule left them."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, (300, 400, 3)).astype(np.uint8)
    image[100:200, 150:300] = (250, 30, 30)
    guide = image_guide(image)
    masks = (np.kron(rng.normal(size=(4, 16, 16)), np.ones((16, 16))) * 4).astype(np.float32)
    points = [
        (float(x), float(y), int(v))
        for x, y, v in zip(
            rng.uniform(0, 1023, 12), rng.uniform(0, 767, 12), rng.integers(0, 2, 12), strict=True
        )
    ]
    coords, labels = _prompt(points)
    out = finish_masks(masks, coords, labels, None, guide, [0])
    last = {}
    for x, y, v in points:  # the last point of a cell decides it
        last[(int(x // 4), int(y // 4))] = v
    for (cx, cy), v in last.items():
        assert (out[0, cy, cx] > 0) == (v == 1), (cx, cy, v, out[0, cy, cx])
    assert np.array_equal(out[1:], finish_masks(masks, coords, labels, None, None, [])[1:])
