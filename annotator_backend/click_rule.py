"""The click rule: a point prompt ends up on the side of the mask its label asks for.

A small decoder can ignore a corrective click: the cell under a negative point stays in the
mask, the one under a positive point stays out, and the next click lands in the same place.
For each point (in prompt order) whose low-res cell has the wrong sign, a Gaussian bump
(`SIGMA` cells, cut at `RADIUS`) is added to the logits around it, scaled so that the cell
ends `MARGIN` on the label's side: ``l += s (|l_c| + MARGIN) g`` with s = +1 for a positive
point, -1 for a negative one and l_c the cell's logit. Points the decoder already honours
change nothing, so a strong model is left alone.

The page applies it after the islands rule and again after edge snapping (which may pull a
bumped cell back when the colours around it are alike); `decoding.finish_masks` here and
static/js/clicks.js in the worker compute the same float64 arithmetic, stored as float32.
"""

from __future__ import annotations

import numpy as np

from .decoding import prompt_cells

SIGMA = 3.0  # bump width in low-res cells (12 px of the 1024 frame)
RADIUS = 9  # the bump is cut 3 sigma from its centre
MARGIN = 4.0  # the clicked cell's logit ends at least this far on its label's side

_d = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
BUMP = np.exp(-(_d[:, None] ** 2 + _d[None, :] ** 2) / (2.0 * SIGMA * SIGMA))  # [2R+1, 2R+1]


def point_cells(cells: np.ndarray, labels: np.ndarray) -> list[tuple[int, int, float]]:
    """The (x, y) cells [N, 2] of the prompt's points with their signs (+1, -1), boxes and
    padding left out; ``labels`` [N] as the contract's."""
    out = []
    for (x, y), v in zip(cells, np.asarray(labels).reshape(-1), strict=True):
        if v in (0.0, 1.0):
            out.append((int(x), int(y), 1.0 if v == 1.0 else -1.0))
    return out


def enforce_clicks(
    masks: np.ndarray, coords: np.ndarray, labels: np.ndarray, outputs: list[int]
) -> np.ndarray:
    """Low-res logits [M, 256, 256] with the click rule applied to `outputs` (``coords``
    [1, N, 2] in the resized-1024 frame, ``labels`` [1, N]); a new array when something
    changed, else `masks` itself."""
    return enforce_clicks_at(masks, prompt_cells(coords), labels, outputs)


def enforce_clicks_at(
    masks: np.ndarray, cells: np.ndarray, labels: np.ndarray, outputs: list[int]
) -> np.ndarray:
    """`enforce_clicks` on any square grid: logits [M, L, L], the prompt's cells [N, 2] (x, y)
    on that grid, ``labels`` [N]."""
    out = masks
    size = masks.shape[-1]
    points = point_cells(cells, labels)
    for k in outputs:
        for x, y, s in points:
            logit = float(out[k, y, x])
            if s * logit > 0.0:
                continue
            if out is masks:
                out = masks.copy()
            y0, y1 = max(y - RADIUS, 0), min(y + RADIUS + 1, size)
            x0, x1 = max(x - RADIUS, 0), min(x + RADIUS + 1, size)
            bump = BUMP[y0 - y + RADIUS : y1 - y + RADIUS, x0 - x + RADIUS : x1 - x + RADIUS]
            window = out[k, y0:y1, x0:x1].astype(np.float64)
            out[k, y0:y1, x0:x1] = (window + s * (abs(logit) + MARGIN) * bump).astype(np.float32)
    return out
