"""Simulated interactive sessions, as in SAM's training (Kirillov et al. 2023, appendix A).

Per mask: the first prompt is a foreground point or a noisy box; each next point is sampled from
the error region of the previous prediction (positive in a missed pixel, negative in an extra
one); the previous low-res logits go back in as ``mask_input``; after the sampled points come
refinement passes with no new point. The prompt embedding is the one of the exported ONNX
decoder (`SamOnnxModel._embed_points`), so training sees exactly what the browser sends.

Everything works on windows of the 1024 frame: an embedding ``[B, 256, E, E]`` of a window at
``offset`` (pixels, multiples of 16) uses the matching part of the decoder's dense positional
encoding, and point coordinates are in the 1024 frame. A full frame is ``E = 64``, offset 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from segment_anything.modeling import Sam

from .losses import hard_iou, mask_losses, min_over_candidates, single_loss
from .page_rules import shown_logits
from .snap import SnapGuide, snap

PAD, NEG, POS, BOX_TL, BOX_BR = -1, 0, 1, 2, 3


@dataclass
class SessionConfig:
    """How a simulated session runs."""

    clicks: int = 8  # sampled points after the first prompt
    refine: int = 2  # passes with no new point at the end
    box_prob: float = 0.5  # first prompt is a noisy box (else a foreground point)
    box_noise: float = 0.1  # box noise std, fraction of the side ...
    box_noise_max: float = 20.0  # ... at most this many pixels (1024 frame)
    interior_click: float = 0.5  # next point at the error's most interior pixel (else uniform)
    grad_passes: int = 3  # passes back-propagated: the first + random others (<= 0: all)
    drop_mask_input: float = 0.15  # probability a pass gets no mask_input (so both modes work)
    # focal weight of object pixels (1 - alpha for background): 0.5, since 0.25 kept a from-scratch
    # decoder predicting empty masks far longer in a pilot (box prompts, 300 steps)
    focal_alpha: float = 0.5
    # probability a mask's session sees a blank image embedding: only its prompts then tell where
    # the object is. A from-scratch decoder otherwise settles on prompt-independent saliency (a
    # pilot's outputs were identical for box and point prompts after 340 steps).
    blind_prob: float = 0.25
    # decode as the page does: the low-res logits snapped to the image's colour edges
    # (`snap.snap`) before the loss, the next click and ``mask_input`` see them; needs the batch's
    # `SnapGuide` (items with ``colors`` and ``extent``), else the session runs unsnapped
    edge_snap: bool = False
    raw_weight: float = 0.25  # edge_snap: weight of the mask loss on the unsnapped logits too
    # the next click and ``mask_input`` see the shown mask after the page's islands and click
    # rules too (`page_rules.shown_logits`); the loss does not. Off: two demo rounds with it
    # matched three without (README, session 13)
    page_rules: bool = False


def embed_points(sam: Sam, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sparse prompt embedding as the ONNX graph computes it.

    coords [M, P, 2] (x, y in the 1024 frame), labels [M, P] (-1 pad, 0 neg, 1 pos, 2/3 box) ->
    [M, P, 256].
    """
    pe = sam.prompt_encoder
    emb = pe.pe_layer._pe_encoding((coords + 0.5) / 1024.0)
    lab = labels[..., None]
    emb = emb * (lab != PAD) + pe.not_a_point_embed.weight * (lab == PAD)
    for i in range(pe.num_point_embeddings):
        emb = emb + pe.point_embeddings[i].weight * (lab == i)
    return emb


def embed_masks(sam: Sam, mask_input: torch.Tensor | None, has: torch.Tensor, size: int) -> torch.Tensor:
    """Dense prompt embedding: mask_input [M, 1, 4E, 4E] or None, has [M] -> [M, 256, E, E]."""
    no_mask = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
    if mask_input is None:
        return no_mask.expand(len(has), -1, size, size)
    h = has.view(-1, 1, 1, 1).to(mask_input.dtype)
    return h * sam.prompt_encoder.mask_downscaling(mask_input) + (1 - h) * no_mask


def window_pe(sam: Sam, offsets: torch.Tensor, size: int) -> torch.Tensor:
    """Dense positional encoding of windows: offsets [B, 2] (pixels) -> [B, 256, E, E]."""
    full = sam.prompt_encoder.get_dense_pe()[0]  # [256, 64, 64]
    out = []
    for ox, oy in (offsets // 16).tolist():
        out.append(full[:, oy : oy + size, ox : ox + size])
    return torch.stack(out)


def decode(
    sam: Sam, src: torch.Tensor, pos: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`MaskDecoder.predict_masks` with per-mask image embeddings.

    src/pos/dense [M, 256, E, E], sparse [M, P, 256] -> (logits [M, 4, 4E, 4E], iou [M, 4]).
    """
    md = sam.mask_decoder
    out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], 0)
    tokens = torch.cat([out_tokens[None].expand(sparse.shape[0], -1, -1), sparse], 1)
    x = src + dense
    b, c, h, w = x.shape
    hs, x = md.transformer(x, pos, tokens)
    x = x.transpose(1, 2).reshape(b, c, h, w)
    up = md.output_upscaling(x)
    hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(md.output_hypernetworks_mlps)], 1)
    b, c, h, w = up.shape
    masks = (hyper @ up.view(b, c, h * w)).view(b, -1, h, w)
    return masks, md.iou_prediction_head(hs[:, 0])


def first_prompts(
    gt: torch.Tensor, crop: int, cfg: SessionConfig, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """First prompt of each mask: gt [M, R, R] (window of side `crop` px) ->
    coords [M, 2, 2] (window px), labels [M, 2], is_box [M] bool.

    A point session is (point, padding); a box session is (top-left, bottom-right).
    """
    M, R, _ = gt.shape
    k = crop / R
    coords = torch.zeros(M, 2, 2)
    labels = torch.zeros(M, 2)
    is_box = torch.zeros(M, dtype=torch.bool)
    gt = gt.cpu()
    for i in range(M):
        ys, xs = torch.nonzero(gt[i] > 0.5, as_tuple=True)
        if len(ys) == 0:
            labels[i] = torch.tensor([PAD, PAD])
            continue
        if rng.random() < cfg.box_prob:
            x0, x1 = xs.min().item() * k, (xs.max().item() + 1) * k
            y0, y1 = ys.min().item() * k, (ys.max().item() + 1) * k
            box = []
            for v, side in ((x0, x1 - x0), (y0, y1 - y0), (x1, x1 - x0), (y1, y1 - y0)):
                noise = max(-cfg.box_noise_max, min(cfg.box_noise_max, rng.gauss(0, cfg.box_noise * side)))
                box.append(min(max(v + noise, 0.0), float(crop)))
            coords[i] = torch.tensor([[box[0], box[1]], [box[2], box[3]]])
            labels[i] = torch.tensor([BOX_TL, BOX_BR])
            is_box[i] = True
        else:
            j = rng.randrange(len(ys))
            coords[i, 0] = torch.tensor(
                [(xs[j].item() + rng.random()) * k, (ys[j].item() + rng.random()) * k]
            )
            labels[i] = torch.tensor([POS, PAD])
    return coords, labels, is_box


def next_clicks(
    pred: torch.Tensor, gt: torch.Tensor, crop: int, interior: float, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """One corrective click per mask from the error region.

    pred [M, L, L] bool (previous prediction), gt [M, L, L] bool -> coords [M, 2] (window px),
    labels [M] (1 in a missed pixel, 0 in an extra pixel, -1 padding when there is no error).
    With probability `interior` the click is at the most interior error pixel (the evaluation
    protocol's rule), otherwise uniform over the error pixels.
    """
    M, L, _ = pred.shape
    k = crop / L
    if pred.device.type != "cpu":  # SciPy's transform needs host arrays
        return next_clicks_on_device(pred, gt, k, interior)
    coords = torch.zeros(M, 2)
    labels = torch.full((M,), float(PAD))
    fn_all = (gt & ~pred).numpy()
    fp_all = (pred & ~gt).numpy()
    for i in range(M):
        fn, fp = fn_all[i], fp_all[i]
        if not fn.any() and not fp.any():
            continue
        if rng.random() < interior:
            dfn = ndimage.distance_transform_edt(np.pad(fn, 1))[1:-1, 1:-1]
            dfp = ndimage.distance_transform_edt(np.pad(fp, 1))[1:-1, 1:-1]
            positive = dfn.max() >= dfp.max()
            d = dfn if positive else dfp
            y, x = np.unravel_index(int(np.argmax(d)), d.shape)
        else:
            ys, xs = np.nonzero(fn | fp)
            j = rng.randrange(len(ys))
            y, x = int(ys[j]), int(xs[j])
            positive = bool(fn[y, x])
        coords[i] = torch.tensor([(x + 0.5) * k, (y + 0.5) * k])
        labels[i] = float(POS if positive else NEG)
    return coords, labels


def interior_distance(region: torch.Tensor) -> torch.Tensor:
    """Distance of each pixel of `region` [N, L, L] bool to the nearest pixel outside it (the
    frame's edge counts as outside), in the octagonal metric of alternating 3x3 square and plus
    erosions: a close, all-tensor stand-in for the Euclidean transform -> [N, L, L] float."""
    x = region[:, None].float()
    dist = x.clone()
    for i in range(region.shape[-1] // 2 + 1):
        p = F.pad(x, (1, 1, 1, 1))
        if i % 2 == 0:
            x = -F.max_pool2d(-p, 3, 1)
        else:
            c = p[..., 1:-1, 1:-1]
            x = torch.minimum(torch.minimum(c, p[..., :-2, 1:-1]), p[..., 2:, 1:-1])
            x = torch.minimum(torch.minimum(x, p[..., 1:-1, :-2]), p[..., 1:-1, 2:])
        dist += x
        if i % 8 == 7 and not bool(x.any()):
            break
    return dist[:, 0]


def next_clicks_on_device(
    pred: torch.Tensor, gt: torch.Tensor, k: float, interior: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`next_clicks` for masks on an accelerator: the same rule, with every mask at once and
    `interior_distance` for the Euclidean distance transform (which only a CPU library has)."""
    M, L, _ = pred.shape
    fn, fp = gt & ~pred, pred & ~gt
    err = (fn | fp).flatten(1)
    d = interior_distance(torch.cat([fn, fp])).view(2, M, L * L)
    dfn, dfp = d[0].max(1).values, d[1].max(1).values
    pos_interior = dfn >= dfp
    idx_interior = torch.where(pos_interior, d[0].argmax(1), d[1].argmax(1))
    weights = err.float() + (~err.any(1, keepdim=True)).float()  # rows with no error: any index
    idx_uniform = torch.multinomial(weights, 1)[:, 0]
    use_interior = torch.rand(M, device=pred.device) < interior
    idx = torch.where(use_interior, idx_interior, idx_uniform)
    positive = fn.flatten(1).gather(1, idx[:, None])[:, 0]
    y, x = idx // L, idx % L
    coords = torch.stack([(x + 0.5) * k, (y + 0.5) * k], 1).float()
    labels = torch.where(positive, float(POS), float(NEG))
    labels = torch.where(err.any(1), labels, float(PAD))
    return coords, labels


def prompt_tokens(
    first_xy: torch.Tensor,
    first_lab: torch.Tensor,
    click_xy: torch.Tensor,
    click_lab: torch.Tensor,
    is_box: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token order of the browser: point sessions (first point, clicks..., padding), box sessions
    (clicks..., top-left, bottom-right). first [M, 2, 2]/[M, 2], clicks [M, n, 2]/[M, n] ->
    coords [M, n + 2, 2], labels [M, n + 2]."""
    pt_xy = torch.cat([first_xy[:, :1], click_xy, first_xy[:, 1:]], 1)
    pt_lab = torch.cat([first_lab[:, :1], click_lab, first_lab[:, 1:]], 1)
    bx_xy = torch.cat([click_xy, first_xy], 1)
    bx_lab = torch.cat([click_lab, first_lab], 1)
    return torch.where(is_box[:, None, None], bx_xy, pt_xy), torch.where(is_box[:, None], bx_lab, pt_lab)


def run_session(
    sam: Sam,
    emb: torch.Tensor,
    masks: torch.Tensor,
    valid: torch.Tensor,
    offsets: torch.Tensor,
    cfg: SessionConfig,
    rng: random.Random,
    full_frame: bool = False,
    guide: SnapGuide | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Simulate a session for every valid mask of a batch and return the mean loss.

    emb [B, 256, E, E] (window embeddings, with grad in full mode), masks [B, K, R, R] float,
    valid [B, K] bool, offsets [B, 2] (window position in the 1024 frame, pixels); guide: the
    images' edge-snapping guides on the 4E x 4E logit grid (used when `cfg.edge_snap`).
    Returns (loss scalar, stats: iou of the first and last pass, number of masks).
    """
    B, _, E, _ = emb.shape
    crop, L = 16 * E, 4 * E
    dev = emb.device
    img_idx, k_idx = torch.nonzero(valid, as_tuple=True)
    M = len(img_idx)
    if M == 0:
        return emb.sum() * 0.0, {"iou_first": 0.0, "iou_last": 0.0, "masks": 0}
    gt = masks[img_idx, k_idx]  # [M, R, R]
    gt_low = (F.adaptive_avg_pool2d(gt[:, None], L)[:, 0] > 0.5) if gt.shape[-1] != L else gt > 0.5
    if full_frame:  # the window is a whole frame at S/16 cells: its PE spans the 1024 frame
        pos = sam.prompt_encoder.pe_layer((E, E))[None].expand(M, -1, -1, -1)
        off = torch.zeros(M, 1, 2, device=dev)
        to_frame = 1024.0 / crop
    else:
        pos = window_pe(sam, offsets, E)[img_idx]
        off = offsets[img_idx].to(torch.float32)[:, None, :]  # [M, 1, 2]
        to_frame = 1.0
    src = emb[img_idx]
    snap_guide = guide.select(img_idx) if guide is not None and cfg.edge_snap else None
    if cfg.blind_prob > 0 and torch.is_grad_enabled():
        src = src * (torch.rand(M, device=dev) >= cfg.blind_prob).to(src.dtype).view(M, 1, 1, 1)
    first_xy, first_lab, is_box = (v.to(dev) for v in first_prompts(gt, crop, cfg, rng))
    first_xy = first_xy * to_frame + off
    click_xy, click_lab = torch.zeros(M, 0, 2, device=dev), torch.zeros(M, 0, device=dev)
    n_pass = 1 + cfg.clicks + cfg.refine
    if cfg.grad_passes <= 0 or cfg.grad_passes >= n_pass:
        grad_at = set(range(n_pass))
    else:
        grad_at = {0, *rng.sample(range(1, n_pass), cfg.grad_passes - 1)}
    prev: torch.Tensor | None = None
    losses: list[torch.Tensor] = []
    stats: dict[str, float] = {"masks": float(M)}
    for t in range(max(grad_at) + 1 if torch.is_grad_enabled() else n_pass):  # later passes teach nothing
        if 1 <= t <= cfg.clicks:
            assert prev is not None
            c, lab = (v.to(dev) for v in next_clicks(prev[:, 0] > 0, gt_low, crop, cfg.interior_click, rng))
            click_xy = torch.cat([click_xy, c[:, None] * to_frame + off], 1)
            click_lab = torch.cat([click_lab, lab[:, None]], 1)
        coords, labels = prompt_tokens(first_xy, first_lab, click_xy, click_lab, is_box)
        with torch.set_grad_enabled(t in grad_at and torch.is_grad_enabled()):
            sparse = embed_points(sam, coords, labels)
            has = torch.rand(M, device=dev) >= cfg.drop_mask_input if prev is not None else torch.zeros(M)
            dense = embed_masks(sam, prev, has, E)
            logits, iou_pred = decode(sam, src, pos, sparse, dense)
            logits, iou_pred = logits.float(), iou_pred.float()
            raw = logits
            if snap_guide is not None:  # every candidate first, then only the one a click shows
                shown = logits if t == 0 else logits[:, :1]
                logits = torch.cat([snap(shown, snap_guide), logits[:, shown.shape[1] :]], 1)
            if t == 0:
                multi, multi_iou = min_over_candidates(logits[:, 1:], iou_pred[:, 1:], gt, cfg.focal_alpha)
                single, single_iou = single_loss(logits[:, 0], iou_pred[:, 0], gt, cfg.focal_alpha)
                loss = torch.where(is_box, single, multi)
                pick = torch.where(is_box, 0, 1 + iou_pred[:, 1:].argmax(1))
                stats["iou_first"] = (
                    torch.where(
                        is_box, single_iou, multi_iou.gather(1, (pick - 1).clamp(min=0)[:, None])[:, 0]
                    )
                    .mean()
                    .item()
                )
            else:
                loss, ious = single_loss(logits[:, 0], iou_pred[:, 0], gt, cfg.focal_alpha)
                pick = torch.zeros(M, dtype=torch.long, device=dev)
                stats["iou_last"] = ious.mean().item()
                stats["passes"] = float(t + 1)
            if snap_guide is not None and cfg.raw_weight > 0:
                per = mask_losses(raw if t == 0 else raw[:, :1], gt, cfg.focal_alpha)
                best = torch.where(is_box, per[:, 0], per[:, 1:].min(1).values) if t == 0 else per[:, 0]
                loss = loss + cfg.raw_weight * best
            if t in grad_at and loss.requires_grad:
                losses.append(loss.mean())
        rows = torch.arange(M, device=dev)
        if cfg.page_rules:
            scale = L / (crop * to_frame)
            fed = has if prev is not None else torch.zeros(M, dtype=torch.bool)
            mask_in = prev[:, 0] if prev is not None else None
            chosen = raw.detach()[rows, pick]
            prev = shown_logits(chosen, coords, labels, off, scale, mask_in, fed, snap_guide)[:, None]
        else:
            prev = logits.detach()[rows, pick][:, None]
    total = torch.stack(losses).mean() if losses else emb.sum() * 0.0
    return total, stats


def prediction_iou(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of logits [M, h, w] > 0 with gt [M, H, W] (logits upsampled), [M]."""
    if logits.shape[-2:] != gt.shape[-2:]:
        logits = F.interpolate(logits[:, None], size=gt.shape[-2:], mode="bilinear", align_corners=False)[
            :, 0
        ]
    return hard_iou(logits, gt)
