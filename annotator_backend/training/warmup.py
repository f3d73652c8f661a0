"""Prompt warm-up: teach a from-scratch decoder to localise prompts before it sees real images.

On natural images a from-scratch SAM decoder first finds a prompt-independent shortcut (a
saliency map) and then stays there: in a pilot its outputs for a box and for a point prompt were
the same after 500 steps. With a blank image embedding the only way to lower the loss is to use
the prompts, and the decoder learns that in about 100-200 steps: this stage does exactly that,
on random rectangles and ellipses over a whole (small) frame, with the full simulated session
(first point or box, corrective clicks, mask_input feedback).
"""

from __future__ import annotations

import logging
import random

import numpy as np
import torch
from segment_anything.modeling import Sam

from .loop import TrainConfig, align_attention_init, uses_bf16
from .simulate import SessionConfig, run_session

log = logging.getLogger(__name__)


def random_shapes(n: int, res: int, rng: random.Random) -> torch.Tensor:
    """n random rectangle/ellipse masks [n, res, res] (float 0/1), each 3-60% of the side."""
    yy, xx = np.mgrid[:res, :res]
    out = np.zeros((n, res, res), np.float32)
    for i in range(n):
        cx, cy = rng.uniform(0, res), rng.uniform(0, res)
        a, b = rng.uniform(0.03, 0.3) * res + 1, rng.uniform(0.03, 0.3) * res + 1
        if rng.random() < 0.5:
            m = (np.abs(xx - cx) < a) & (np.abs(yy - cy) < b)
        else:
            m = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
        out[i] = m
    return torch.from_numpy(out)


def prompt_warmup(
    sam: Sam,
    steps: int = 200,
    cells: int = 16,
    masks_per_step: int = 6,
    lr: float = 1e-3,
    session: SessionConfig | None = None,
    seed: int = 0,
    align: bool = True,
) -> dict[str, float]:
    """Train `sam`'s prompt encoder and mask decoder in place on blank `cells`x`cells` frames.

    Returns the last step's stats (iou of the first and last pass).
    """
    if align:
        align_attention_init(sam, seed=seed)
    rng = random.Random(seed)
    cfg = session or SessionConfig(blind_prob=0.0)
    params = [p for n, p in sam.named_parameters() if not n.startswith("image_encoder.")]
    opt = torch.optim.AdamW(params, lr=lr)
    sam.train()
    res = 4 * cells
    bf16 = uses_bf16(TrainConfig())  # the CPU's choice, as a CPU training run makes it
    stats: dict[str, float] = {}
    emb = torch.zeros(masks_per_step, 256, cells, cells)
    valid = torch.ones(masks_per_step, 1, dtype=torch.bool)
    offsets = torch.zeros(masks_per_step, 2, dtype=torch.long)
    for step in range(steps):
        masks = random_shapes(masks_per_step, res, rng)[:, None]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, stats = run_session(sam, emb, masks, valid, offsets, cfg, rng, full_frame=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 25 == 0:
            log.info(
                "prompt warm-up %d/%d loss %.3f iou1 %.3f iouN %.3f",
                step + 1,
                steps,
                loss.item(),
                stats.get("iou_first", 0.0),
                stats.get("iou_last", 0.0),
            )
    sam.eval()
    return stats
