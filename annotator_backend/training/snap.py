"""Edge snapping in torch: `edge_snap.snap_logits` batched and differentiable, for training.

The page snaps the decoded low-res logits to the image's colour edges (a guided filter, see
`annotator_backend.edge_snap`) before it shows them, stores them and feeds them back as
``mask_input``. A session simulated with `SnapGuide` decodes the same way, so the decoder learns
logits whose *snapped* masks match the objects. For a fixed image the filter is affine in the
probabilities, so the loss on snapped logits reaches the decoder's weights through it.

Arithmetic in float32 (the page and `edge_snap` use float64): the two agree to about 1e-4 in
probability, which is all training needs (tests/test_edge_snap.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..decoding import LOW_RES, low_res_extent
from ..edge_snap import CLIP, MAX_LOGIT, RADIUS, cell_colors, inverse_covariance


def frame_colors(image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [H, W, 3] -> (colors float16 [3, 256, 256], zero outside the image's share of the
    low-res grid; extent long [2], that share's (height, width) in cells)."""
    colors = cell_colors(image)
    lh, lw = colors.shape[:2]
    out = torch.zeros(3, LOW_RES, LOW_RES, dtype=torch.float16)
    out[:, :lh, :lw] = torch.from_numpy(colors.transpose(2, 0, 1).astype(np.float32))
    assert (lw, lh) == low_res_extent(image.shape[1], image.shape[0])
    return out, torch.tensor([lh, lw], dtype=torch.long)


def box_sum(x: torch.Tensor, r: int = RADIUS) -> torch.Tensor:
    """Sum over the (2r+1)^2 window around each cell, zeros beyond the frame: [..., H, W]."""
    k = 2 * r + 1
    c = torch.cumsum(F.pad(x, (0, 0, r + 1, r)), -2)  # a zero row first, r padding rows each side
    x = c[..., k:, :] - c[..., :-k, :]
    c = torch.cumsum(F.pad(x, (r + 1, r)), -1)
    return c[..., k:] - c[..., :-k]


@dataclass
class SnapGuide:
    """The per-image part of the filter for a batch of images, on the full 256 x 256 grid."""

    area: torch.Tensor  # [B, 1, H, W] 1 in the image's share of the grid, 0 beyond
    count: torch.Tensor  # [B, 1, H, W] cells of each window inside the share (>= 1)
    colors: torch.Tensor  # [B, 3, H, W]
    means: torch.Tensor  # [B, 3, H, W] window means of the colours
    inverse: torch.Tensor  # [B, 6, H, W] inverse of covariance + EPS I (rr rg rb gg gb bb)

    @classmethod
    def build(cls, colors: torch.Tensor, extent: torch.Tensor) -> SnapGuide:
        """colors [B, 3, H, W] (zero beyond the share), extent [B, 2] (cells high, wide)."""
        colors = colors.float()
        B, _, H, W = colors.shape
        ys = torch.arange(H, device=colors.device).view(1, H, 1)
        xs = torch.arange(W, device=colors.device).view(1, 1, W)
        area = ((ys < extent[:, :1, None]) & (xs < extent[:, 1:, None])).float()[:, None]
        count = box_sum(area).clamp(min=1.0)
        colors = colors * area
        means = box_sum(colors) / count
        r, g, b = colors.unbind(1)
        prods = torch.stack([r * r, r * g, r * b, g * g, g * b, b * b], 1)
        m = box_sum(prods) / count
        parts = inverse_covariance(means.unbind(1), m.unbind(1))
        inverse = torch.stack(parts, 1)
        return cls(area=area, count=count, colors=colors, means=means, inverse=inverse)

    def select(self, index: torch.Tensor) -> SnapGuide:
        """The guides of images `index` [M] (one per mask)."""
        return SnapGuide(*(t[index] for t in (self.area, self.count, self.colors, self.means, self.inverse)))


def snap(logits: torch.Tensor, guide: SnapGuide) -> torch.Tensor:
    """Snapped logits [M, C, H, W] (C outputs of mask m snapped with guide m); cells beyond the
    image's share keep their logits."""
    x = logits.float().clamp(-MAX_LOGIT, MAX_LOGIT)
    p = torch.sigmoid(x)  # [M, C, H, W]
    area, count = guide.area, guide.count
    ip = guide.colors[:, None] * p[:, :, None]  # [M, C, 3, H, W]
    mp = box_sum(p * area) / count
    mip = box_sum(ip * area[:, None]) / count[:, None]
    mr, mg, mb = (guide.means[:, i, None] for i in range(3))
    cr = mip[:, :, 0] - mr * mp
    cg = mip[:, :, 1] - mg * mp
    cb = mip[:, :, 2] - mb * mp
    inv = [guide.inverse[:, i, None] for i in range(6)]
    ar = inv[0] * cr + inv[1] * cg + inv[2] * cb
    ag = inv[1] * cr + inv[3] * cg + inv[4] * cb
    ab = inv[2] * cr + inv[4] * cg + inv[5] * cb
    b = mp - (ar * mr + ag * mg + ab * mb)
    ma = box_sum(torch.stack([ar, ag, ab, b], 2) * area[:, None]) / count[:, None]
    c = guide.colors[:, None]
    q = ma[:, :, 0] * c[:, :, 0] + ma[:, :, 1] * c[:, :, 1] + ma[:, :, 2] * c[:, :, 2] + ma[:, :, 3]
    q = q.clamp(CLIP, 1.0 - CLIP)
    return torch.where(area > 0, torch.log(q / (1.0 - q)), logits.float())
