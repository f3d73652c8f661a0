"""The page's rules on a simulated session's shown mask, for training.

The page does not show the decoder's logits as they come (`decoding.finish_masks`): it drops
the islands nothing of the prompt touches (`decoding.drop_islands`), bumps the cells of points
the mask ignores (`click_rule.enforce_clicks`), snaps the result to the image's edges and
applies the click rule once more. What it shows is what the annotator corrects next and what
goes back as ``mask_input``. `shown_logits` applies the same rules, through the same
functions, to the output each simulated mask shows, so that a session's next click and
``mask_input`` are the page's. The rules are post-processing: the loss stays on the decoder's
(snapped) logits.

Cells are those of the logit grid of the window (4 px of the 1024 frame in window training, as
on the page; coarser in whole-frame training, where the click rule's bump is wider in pixels).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..decoding import finish_at
from .snap import SnapGuide, snap


def window_cells(coords: torch.Tensor, offset: torch.Tensor, scale: float, size: int) -> np.ndarray:
    """Prompt coordinates [M, N, 2] (1024 frame) -> (x, y) cells [M, N, 2] of a window's logit
    grid of side `size`: ``floor((xy - offset) * scale)``, clipped to the grid."""
    cells = torch.floor((coords - offset) * scale).clamp(0, size - 1)
    return cells.long().cpu().numpy()


def _snapper(guide: SnapGuide) -> Callable[[np.ndarray, list[int]], np.ndarray]:
    """`snap.snap` with one mask's guide, on the arrays `decoding.finish_at` passes: [1, L, L]."""
    dev = guide.colors.device

    def snap_one(logits: np.ndarray, _outputs: list[int]) -> np.ndarray:
        return snap(torch.from_numpy(logits).to(dev)[:, None], guide)[:, 0].cpu().numpy()

    return snap_one


@torch.no_grad()
def shown_logits(
    raw: torch.Tensor,
    coords: torch.Tensor,
    labels: torch.Tensor,
    offset: torch.Tensor,
    scale: float,
    mask_input: torch.Tensor | None,
    fed: torch.Tensor,
    guide: SnapGuide | None,
) -> torch.Tensor:
    """What the page shows for each mask's chosen output (`decoding.finish_at`, snapped with
    `snap.snap` when there is a guide).

    raw [M, L, L] (the decoder's logits of the shown output), coords [M, N, 2] and labels
    [M, N] (the prompt, 1024 frame), offset [M, 1, 2] and scale (see `window_cells`),
    mask_input [M, L, L] or None with fed [M] bool (which masks got it this pass), guide: the
    masks' edge-snapping guides or None -> logits [M, L, L] on raw's device.
    """
    cells = window_cells(coords, offset, scale, raw.shape[-1])
    lab = labels.cpu().numpy()
    prev = None if mask_input is None else mask_input.float().cpu().numpy()
    was_fed = fed.bool().cpu().numpy()
    out = raw.float().cpu().numpy().copy()
    for i in range(len(out)):
        snap_fn = None if guide is None else _snapper(guide.select(torch.tensor([i], device=raw.device)))
        shown_prev = prev[i] if prev is not None and was_fed[i] else None
        out[i] = finish_at(out[i : i + 1], cells[i], lab[i], shown_prev, [0], snap_fn)[0]
    return torch.from_numpy(out).to(raw.device)
