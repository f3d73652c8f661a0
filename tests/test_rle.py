"""RLE round trips (property-based) and refusal of RLEs that do not fit their image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from annotator_backend import rle


def _runs(mask: np.ndarray) -> list[int]:
    """Uncompressed column-major runs starting with zeros, as the browser sends them."""
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] == 1 else runs


@settings(max_examples=150, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_round_trip_through_json(mask: np.ndarray) -> None:
    h, w = mask.shape
    for encoded in (rle.encode(mask), {"size": [h, w], "counts": _runs(mask)}):
        stored = rle.normalise(json.loads(json.dumps(encoded)), h, w)
        assert np.array_equal(rle.decode(json.loads(json.dumps(stored))), mask)


def test_holes_and_detached_parts_survive() -> None:
    mask = np.zeros((30, 30), bool)
    mask[5:25, 5:25] = True
    mask[10:15, 10:15] = False  # a hole
    mask[27:29, 27:29] = True  # a detached part
    assert np.array_equal(rle.decode(rle.normalise(rle.encode(mask), 30, 30)), mask)
    assert rle.area_and_bbox(rle.encode(mask))[0] == int(mask.sum())


@pytest.mark.parametrize(
    "bad",
    [
        {"size": [10, 10], "counts": [50]},  # too few pixels
        {"size": [10, 10], "counts": [60, 50]},  # too many
        {"size": [10, 11], "counts": [110]},  # wrong size
        {"size": [10, 10], "counts": [-5, 105]},
        {"size": [10, 10], "counts": "!!!"},
        {"size": [10, 10], "counts": 7},
        {"counts": [100]},
        [1, 2, 3],
    ],
)
def test_rles_that_do_not_fit_are_refused(bad: object) -> None:
    with pytest.raises(rle.RLEError):
        rle.normalise(bad, 10, 10)
