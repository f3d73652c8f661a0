"""SAM's training losses: focal + dice (20:1) on mask logits, MSE on predicted IoU.

For an ambiguous prompt (a single point) the decoder returns three candidates and only the one
with the lowest mask loss is back-propagated (`min_over_candidates`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_WEIGHT = 20.0
DICE_WEIGHT = 1.0
IOU_WEIGHT = 1.0


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss averaged over pixels: logits/target [..., H, W] -> [...]."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft dice loss: logits/target [..., H, W] -> [...]."""
    p = torch.sigmoid(logits).flatten(-2)
    t = target.flatten(-2)
    return 1 - (2 * (p * t).sum(-1) + smooth) / (p.sum(-1) + t.sum(-1) + smooth)


def hard_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of (logits > 0) with target > 0.5: [..., H, W] -> [...] (no gradient)."""
    with torch.no_grad():
        p = (logits > 0).flatten(-2)
        t = (target > 0.5).flatten(-2)
        inter = (p & t).sum(-1).float()
        union = (p | t).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def mask_losses(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25) -> torch.Tensor:
    """Per-candidate mask loss 20*focal + dice.

    logits [M, C, h, w] (any resolution; upsampled bilinearly to the target's), target [M, H, W]
    -> [M, C].
    """
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    t = target[:, None].expand_as(logits)
    return FOCAL_WEIGHT * focal_loss(logits, t, alpha) + DICE_WEIGHT * dice_loss(logits, t)


def iou_targets(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """True IoU of each candidate: logits [M, C, h, w], target [M, H, W] -> [M, C]."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits.detach(), size=target.shape[-2:], mode="bilinear", align_corners=False)
    return hard_iou(logits, target[:, None].expand_as(logits))


def min_over_candidates(
    logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of an ambiguous prompt: only the lowest-loss candidate's mask loss counts.

    logits [M, C, h, w], iou_pred [M, C], target [M, H, W] -> (loss [M], true IoU [M, C]). The
    IoU head is trained with MSE on every candidate.
    """
    per = mask_losses(logits, target, alpha)  # [M, C]
    best = per.min(dim=1).values
    ious = iou_targets(logits, target)
    iou_mse = F.mse_loss(iou_pred, ious, reduction="none").mean(1)
    return best + IOU_WEIGHT * iou_mse, ious


def single_loss(
    logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of an unambiguous prompt: logits [M, h, w], iou_pred [M], target [M, H, W] -> ([M], IoU [M])."""
    loss, ious = min_over_candidates(logits[:, None], iou_pred[:, None], target, alpha)
    return loss, ious[:, 0]
