"""Edge snapping: the decoded low-res logits pulled towards the image's colour edges.

The mask decoder sees the image only through the 64x64 embedding, so its boundaries are blurred
at that scale. A colour guided filter (He, Sun & Tang, "Guided Image Filtering") with the
image as the guide moves them onto the colour edges nearby: on the 256x256 low-res grid of the
logits (the image's share of it, `decoding.low_res_extent`), with the mean colour of each cell
as the guide, the mask probability ``p = sigmoid(logits)`` becomes ``q = A I + B``, a locally
affine function of the colour, and the logits ``log(q / (1 - q))`` (q kept within
[CLIP, 1 - CLIP]). Cells outside the image keep their logits.

static/js/edge_snap.js is the same arithmetic in the same order (float64), so the page and
this module snap alike (tests/browser/test_annotate_page.py holds them together). The snapped
logits are what the page shows, stores and feeds back as ``mask_input``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from .decoding import LOW_RES, MODEL_SIZE, low_res_extent

RADIUS = 6  # window half-size in low-res cells (13 x 13 cells)
EPS = 1e-3  # regularisation of the colour covariance (colours in [0, 1])
CLIP = 1e-4  # q is kept in [CLIP, 1 - CLIP]: logits within about +-9.2
MAX_LOGIT = 50.0  # sigmoid's argument is clipped to +-MAX_LOGIT
T = TypeVar("T")  # an array type: numpy here, torch in training/snap.py


@dataclass
class Guide:
    """What the filter needs of one image, on its share of the low-res grid (lh x lw cells)."""

    colors: np.ndarray  # [lh, lw, 3] mean colour of each cell, in [0, 1]
    means: np.ndarray  # [lh, lw, 3] window means of the colours
    inverse: np.ndarray  # [lh, lw, 6] window colour covariance + EPS I, inverted (rr rg rb gg gb bb)


def box_mean(x: np.ndarray, r: int = RADIUS) -> np.ndarray:
    """Mean over the (2r+1)^2 window around each cell, the window clipped at the borders.
    x [h, w] or [h, w, c]; running sums along y, then along x, each window sum times 1 / its
    length."""
    out = x.astype(np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        c = np.concatenate([np.zeros_like(out.take([0], axis=axis)), np.cumsum(out, axis=axis)], axis=axis)
        lo = np.clip(np.arange(n) - r, 0, n)
        hi = np.clip(np.arange(n) + r + 1, 0, n)
        inv = 1.0 / (hi - lo).astype(np.float64)
        shape = [1] * out.ndim
        shape[axis] = n
        out = (c.take(hi, axis=axis) - c.take(lo, axis=axis)) * inv.reshape(shape)
    return out


def cell_colors(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> [lh, lw, 3]: the mean colour (in [0, 1]) of the pixels whose centres
    fall in each low-res cell of the image's share of the 256 x 256 grid (for a cell with none,
    in an image under 256 px a side, the pixel under the cell's centre)."""
    h, w = image.shape[:2]
    lw, lh = low_res_extent(w, h)
    s = MODEL_SIZE / max(w, h)
    cell = MODEL_SIZE / LOW_RES  # model-frame pixels per low-res cell
    cx = np.minimum(np.floor((np.arange(w) + 0.5) * s / cell).astype(np.int64), lw - 1)
    cy = np.minimum(np.floor((np.arange(h) + 0.5) * s / cell).astype(np.int64), lh - 1)
    sums = np.zeros((lh, lw, 3), np.float64)
    counts = np.zeros((lh, lw), np.float64)
    np.add.at(sums, (cy[:, None], cx[None, :]), image[..., :3].astype(np.float64))
    np.add.at(counts, (cy[:, None], cx[None, :]), 1.0)
    colors = sums / np.maximum(counts, 1.0)[..., None] / 255.0
    empty = counts == 0  # an image under 256 px a side: cells between pixel centres
    if empty.any():  # take the pixel under the cell's centre
        px = np.minimum(np.floor((np.arange(lw) + 0.5) * cell / s).astype(np.int64), w - 1)
        py = np.minimum(np.floor((np.arange(lh) + 0.5) * cell / s).astype(np.int64), h - 1)
        nearest = image[py[:, None], px[None, :], :3].astype(np.float64) / 255.0
        colors[empty] = nearest[empty]
    return colors


def inverse_covariance(means: Sequence[T], prods: Sequence[T]) -> list[T]:
    """The window colour covariance + EPS I, inverted, from the window means of the colours
    (r, g, b) and of their products (rr rg rb gg gb bb): its six entries (rr rg rb gg gb bb).
    Elementwise arithmetic only, so numpy arrays and torch tensors (training/snap.py) alike."""
    mr, mg, mb = means
    srr = prods[0] - mr * mr + EPS
    srg = prods[1] - mr * mg
    srb = prods[2] - mr * mb
    sgg = prods[3] - mg * mg + EPS
    sgb = prods[4] - mg * mb
    sbb = prods[5] - mb * mb + EPS
    # adjugate / determinant of the symmetric 3x3 matrix
    irr = sgg * sbb - sgb * sgb
    irg = srb * sgb - srg * sbb
    irb = srg * sgb - srb * sgg
    igg = srr * sbb - srb * srb
    igb = srb * srg - srr * sgb
    ibb = srr * sgg - srg * srg
    det = srr * irr + srg * irg + srb * irb
    return [v / det for v in (irr, irg, irb, igg, igb, ibb)]


def image_guide(image: np.ndarray) -> Guide:
    """The per-image part of the filter, computed once per image (uint8 [H, W, 3])."""
    colors = cell_colors(image)
    means = box_mean(colors)
    r, g, b = (colors[..., i] for i in range(3))
    mr, mg, mb = (means[..., i] for i in range(3))
    prods = np.stack([r * r, r * g, r * b, g * g, g * b, b * b], axis=-1)
    m = box_mean(prods)
    parts = inverse_covariance((mr, mg, mb), [m[..., i] for i in range(6)])
    inverse = np.stack(parts, axis=-1)
    return Guide(colors=colors, means=means, inverse=inverse)


def snap_logits(logits: np.ndarray, guide: Guide) -> np.ndarray:
    """One low-res logit map [256, 256] -> the snapped map (float32, a new array)."""
    lh, lw = guide.colors.shape[:2]
    x = np.clip(logits[:lh, :lw].astype(np.float64), -MAX_LOGIT, MAX_LOGIT)
    p = 1.0 / (1.0 + np.exp(-x))
    m = box_mean(np.concatenate([p[..., None], guide.colors * p[..., None]], axis=-1))
    mp, mip = m[..., 0], m[..., 1:]
    mr, mg, mb = (guide.means[..., i] for i in range(3))
    cr = mip[..., 0] - mr * mp
    cg = mip[..., 1] - mg * mp
    cb = mip[..., 2] - mb * mp
    inv = guide.inverse
    ar = inv[..., 0] * cr + inv[..., 1] * cg + inv[..., 2] * cb
    ag = inv[..., 1] * cr + inv[..., 3] * cg + inv[..., 4] * cb
    ab = inv[..., 2] * cr + inv[..., 4] * cg + inv[..., 5] * cb
    b = mp - (ar * mr + ag * mg + ab * mb)
    ma = box_mean(np.stack([ar, ag, ab, b], axis=-1))
    colors = guide.colors
    q = ma[..., 0] * colors[..., 0] + ma[..., 1] * colors[..., 1] + ma[..., 2] * colors[..., 2] + ma[..., 3]
    q = np.clip(q, CLIP, 1.0 - CLIP)
    out = np.array(logits, dtype=np.float32, copy=True)
    out[:lh, :lw] = np.log(q / (1.0 - q))
    return out


def snap_masks(masks: np.ndarray, guide: Guide | None, outputs: list[int] | None = None) -> np.ndarray:
    """Snap the low-res masks [k, 256, 256] listed in `outputs` (all when None); the others and,
    without a guide, all of them are returned unchanged."""
    if guide is None:
        return masks
    out = masks.copy()
    for i in range(masks.shape[0]) if outputs is None else outputs:
        out[i] = snap_logits(masks[i], guide)
    return out
