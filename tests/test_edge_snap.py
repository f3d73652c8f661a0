"""Edge snapping (annotator_backend/edge_snap.py): a blurred boundary moves onto the colour edge."""

from __future__ import annotations

import numpy as np

from annotator_backend.edge_snap import CLIP, box_mean, image_guide, snap_logits, snap_masks


def _two_colours(width: int, height: int, edge_x: int) -> np.ndarray:
    """Red left of `edge_x`, blue from it on, with a little noise."""
    rng = np.random.default_rng(0)
    img = np.zeros((height, width, 3), np.float64)
    img[:, :edge_x] = (200, 40, 40)
    img[:, edge_x:] = (40, 40, 200)
    return (img + rng.normal(0, 4, img.shape)).clip(0, 255).astype(np.uint8)


def test_box_mean_is_the_clipped_window_mean() -> None:
    x = np.arange(35, dtype=np.float64).reshape(5, 7)
    got = box_mean(x, 1)
    assert got[2, 3] == x[1:4, 2:5].mean() and got[0, 0] == x[0:2, 0:2].mean()
    assert np.allclose(got[4, 6], x[3:5, 5:7].mean())


def test_a_blurred_boundary_snaps_to_the_colour_edge() -> None:
    image = _two_colours(1024, 512, edge_x=512)  # the edge falls between cells 127 and 128
    guide = image_guide(image)
    assert guide.colors.shape == (128, 256, 3)  # the image's share of the 256 x 256 grid
    cols = np.arange(256, dtype=np.float32)
    # the model's boundary 2 cells short of the colour edge, a smooth ramp: snapped onto the edge
    logits = np.tile((125.5 - cols) * 0.5, (256, 1)).astype(np.float32)
    out = snap_logits(logits, guide)
    row = out[64]
    assert (row[:128] > 0).all() and (row[128:] < 0).all()
    assert row[127] - row[128] > 5 * (logits[64, 127] - logits[64, 128])  # a step at the edge
    assert np.array_equal(out[128:], logits[128:])  # rows below the image are left alone
    # 4 cells short: pulled towards it (a blend of the model and the colours, not a jump)
    far = snap_logits(np.tile((123.5 - cols) * 0.5, (256, 1)).astype(np.float32), guide)[64]
    assert 125 <= np.flatnonzero(far > 0).max() < 128
    bound = np.log((1 - CLIP) / CLIP)
    assert np.abs(out[:128]).max() <= bound + 1e-4


def test_small_images_leave_no_cell_without_a_colour() -> None:
    """Under 256 px a side, some cells hold no pixel centre: they take the pixel under theirs."""
    image = _two_colours(64, 40, 20)
    colors = image_guide(image).colors
    assert colors.shape == (160, 256, 3) and colors.sum(-1).min() > 0.2
    assert np.allclose(colors[:, :80], image[0, 0] / 255, atol=0.1)  # red up to the edge at x 20
    assert np.allclose(colors[:, 80:], image[0, -1] / 255, atol=0.1)


def test_without_a_guide_or_for_other_outputs_nothing_changes() -> None:
    masks = np.random.default_rng(1).normal(size=(4, 256, 256)).astype(np.float32)
    assert snap_masks(masks, None, [0]) is masks
    guide = image_guide(_two_colours(64, 48, 30))
    out = snap_masks(masks, guide, [2])
    assert np.array_equal(out[[0, 1, 3]], masks[[0, 1, 3]]) and not np.array_equal(out[2], masks[2])


def test_training_snap_matches_the_page_arithmetic() -> None:
    """training/snap.py (torch, float32, batched, differentiable) snaps as edge_snap.py does."""
    import torch

    from annotator_backend.decoding import low_res_extent
    from annotator_backend.training.snap import SnapGuide, frame_colors, snap

    image = _two_colours(130, 90, 70)  # landscape: the share is 256 x 178 cells
    colors, extent = frame_colors(image)
    lw, lh = low_res_extent(130, 90)
    assert extent.tolist() == [lh, lw] and not colors[:, lh:].any() and not colors[:, :, lw:].any()
    rng = np.random.default_rng(2)
    logits = (rng.normal(0, 3, (256, 256)) + np.linspace(-8, 8, 256)[None]).astype(np.float32)
    want = snap_logits(logits, image_guide(image))
    guide = SnapGuide.build(colors[None], extent[None]).select(torch.tensor([0, 0]))
    x = torch.from_numpy(logits)[None, None].repeat(2, 3, 1, 1).requires_grad_(True)
    got = snap(x, guide)
    assert got.shape == (2, 3, 256, 256)
    prob = 1 / (1 + np.exp(-want.astype(np.float64)))
    assert np.abs(torch.sigmoid(got[1, 2]).detach().numpy() - prob).max() < 1e-3
    assert torch.equal(got[0, 0, lh:], x[0, 0, lh:])  # cells below the image keep their logits
    got[:, :, :lh, :lw].sum().backward()  # the filter passes gradients on to the decoder's logits
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad[:, :, :lh, :lw].abs().sum() > 0
