"""Run the exported ONNX decoder the way the browser does (coordinates, mask choice, upscaling).

The browser (static/js) and this module follow the same rules, so evaluation, replay and the
page agree:

* point coordinates are image pixels scaled by ``1024 / max(width, height)``;
* a single positive point (no box, no previous mask) uses the multimask outputs 1..3 and picks
  the highest predicted IoU; anything more uses output 0 (the single-mask token);
* islands (8-connected regions of positive low-res logits) that no prompt touches are set to
  `ISLAND_LOGIT` in all four outputs when some region is touched (`drop_islands`);
* a point whose low-res cell the shown outputs (1..3 for a single positive point, else 0) put
  on the wrong side gets a local bump of the logits (`click_rule.enforce_clicks`);
* with the image at hand (an `edge_snap.Guide`), the shown outputs are snapped to the image's
  colour edges (`edge_snap.snap_masks`), and the click rule is applied once more;
* the chosen low-res logits of the previous step are fed back as ``mask_input`` when
  ``feed_mask`` is on;
* logits are cropped to the image's part of the padded 256x256 frame, upscaled bilinearly to
  the image size, and thresholded at 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from scipy import ndimage

LOW_RES = 256
MODEL_SIZE = 1024
ISLAND_LOGIT = -1.0  # what the cells of a dropped island become
_EIGHT = np.ones((3, 3), dtype=bool)

if TYPE_CHECKING:
    from .edge_snap import Guide


def resize_scale(width: int, height: int) -> float:
    """Scale from image pixels to the resized-1024 frame (longest side)."""
    return MODEL_SIZE / max(width, height)


def resized_size(width: int, height: int) -> tuple[int, int]:
    """(w, h) of the image resized so its longest side is 1024, as `ResizeLongestSide` does."""
    s = resize_scale(width, height)
    return int(width * s + 0.5), int(height * s + 0.5)


def to_model_coords(points_xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Continuous image coordinates (x, y) [N, 2] -> resized-1024 frame, float32.

    Same formula as `ResizeLongestSide.apply_coords`: x * new_w / w, y * new_h / h. The centre
    of integer pixel (i, j) is (i + 0.5, j + 0.5).
    """
    rw, rh = resized_size(width, height)
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    return (pts * np.array([rw / width, rh / height])).astype(np.float32)


def low_res_extent(width: int, height: int) -> tuple[int, int]:
    """(w, h) of the image's part of the 256x256 low-res frame, rounded up."""
    rw, rh = resized_size(width, height)
    return -(-rw * LOW_RES // MODEL_SIZE), -(-rh * LOW_RES // MODEL_SIZE)


def upscale_logits(low_res: np.ndarray, width: int, height: int) -> np.ndarray:
    """Low-res logits [256, 256] -> logits [height, width] at image resolution.

    The official post-processing: bilinear to 1024x1024, crop the unpadded part, bilinear to
    the image size (align_corners False).
    """
    t = torch.from_numpy(np.ascontiguousarray(low_res, dtype=np.float32))[None, None]
    t = F.interpolate(t, (MODEL_SIZE, MODEL_SIZE), mode="bilinear", align_corners=False)
    rw, rh = resized_size(width, height)
    t = t[..., :rh, :rw]
    t = F.interpolate(t, (height, width), mode="bilinear", align_corners=False)
    return t[0, 0].numpy()


def prompt_cells(coords: np.ndarray) -> np.ndarray:
    """Prompt coordinates [1, N, 2] in the resized-1024 frame -> their low-res cells [N, 2]
    (x, y); one cell is 4x4 of that frame."""
    pts = np.asarray(coords, dtype=np.float32).reshape(-1, 2)
    return np.clip(np.floor(pts * (LOW_RES / MODEL_SIZE)), 0, LOW_RES - 1).astype(int)


def drop_islands(
    masks: np.ndarray, coords: np.ndarray, labels: np.ndarray, mask_input: np.ndarray | None = None
) -> np.ndarray:
    """Low-res logits [M, 256, 256] without the islands that nothing of the prompt touches.

    An island is an 8-connected region of positive logits on the 256x256 grid. It is kept when
    it holds the cell of a positive point (``coords`` [1, N, 2] in the resized-1024 frame, one
    cell is 4x4 of it, ``labels`` [1, N] as the contract's), meets the cells of a box, or meets
    the positive cells of ``mask_input`` [256, 256] (what the previous step or a reopened mask
    showed); the cells of the others become `ISLAND_LOGIT`. With no island touched nothing
    changes. Returns a new array when it changed. Same rule as static/js/islands.js.
    """
    return drop_islands_at(masks, prompt_cells(coords), labels, mask_input)


def drop_islands_at(
    masks: np.ndarray, cells: np.ndarray, labels: np.ndarray, mask_input: np.ndarray | None = None
) -> np.ndarray:
    """`drop_islands` on any square grid: logits [M, L, L], the prompt's cells [N, 2] (x, y) on
    that grid, ``labels`` [N] as the contract's, ``mask_input`` [L, L] or None."""
    size = masks.shape[-1]
    lbl = np.asarray(labels, dtype=np.float32).reshape(-1)
    touched = np.zeros((size, size), dtype=bool)
    for (x, y), v in zip(cells, lbl, strict=True):
        touched[y, x] |= v == 1
    corners = [cells[lbl == 2], cells[lbl == 3]]
    if all(len(c) for c in corners):
        (x0, y0), (x1, y1) = corners[0][0], corners[1][0]
        touched[y0 : y1 + 1, x0 : x1 + 1] = True
    if mask_input is not None:
        touched |= np.asarray(mask_input).reshape(size, size) > 0
    if not touched.any():
        return masks
    out = masks
    for k in range(masks.shape[0]):
        regions, n = ndimage.label(masks[k] > 0, structure=_EIGHT)
        kept = np.unique(regions[touched & (regions > 0)])
        if len(kept) == 0 or len(kept) == n:
            continue
        drop = (regions > 0) & ~np.isin(regions, kept)
        if out is masks:
            out = masks.copy()
        out[k][drop] = ISLAND_LOGIT
    return out


@dataclass
class Prompt:
    """Prompts of one mask, in image pixels. Labels: 1 positive, 0 negative."""

    points: list[tuple[float, float]]
    labels: list[int]
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1

    def model_inputs(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        pts = list(self.points)
        lbl = [float(v) for v in self.labels]
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            pts += [(x0, y0), (x1, y1)]
            lbl += [2.0, 3.0]
        else:
            pts.append((0.0, 0.0))
            lbl.append(-1.0)
        coords = to_model_coords(np.array(pts, dtype=np.float32).reshape(-1, 2), width, height)
        if self.box is None:
            coords[-1] = 0.0  # padding point sits at the origin, as in the official demo
        return coords[None], np.array(lbl, dtype=np.float32)[None]

    @property
    def uses_multimask(self) -> bool:
        return self.box is None and len(self.points) == 1 and self.labels[0] == 1


class OnnxDecoder:
    """An onnxruntime session on a decoder exported by `onnx_export.export_decoder`."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(
        self,
        embedding: np.ndarray,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw contract call: returns low_res_masks [4, 256, 256] and iou_predictions [4]."""
        has = mask_input is not None
        feeds = {
            "image_embeddings": np.ascontiguousarray(embedding, dtype=np.float32).reshape(1, 256, 64, 64),
            "point_coords": coords.astype(np.float32),
            "point_labels": labels.astype(np.float32),
            "mask_input": (
                mask_input.reshape(1, 1, LOW_RES, LOW_RES).astype(np.float32)
                if has
                else np.zeros((1, 1, LOW_RES, LOW_RES), np.float32)
            ),
            "has_mask_input": np.array([1.0 if has else 0.0], np.float32),
        }
        masks, iou = self.session.run(None, feeds)
        return masks[0], iou[0]

    def decode(
        self,
        embedding: np.ndarray,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None = None,
        guide: Guide | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`run`, then `finish_masks` on the page's shown outputs: the four outputs as the page
        receives them."""
        masks, iou = self.run(embedding, coords, labels, mask_input)
        shown = [1, 2, 3] if multimask_prompt(labels, mask_input) else [0]
        return finish_masks(masks, coords, labels, mask_input, guide, shown), iou

    def predict(
        self,
        embedding: np.ndarray,
        prompt: Prompt,
        width: int,
        height: int,
        previous_logits: np.ndarray | None = None,
        guide: Guide | None = None,
    ) -> tuple[np.ndarray, float, int]:
        """Decode one prompt state: (chosen low-res logits [256,256], predicted IoU, index)."""
        coords, labels = prompt.model_inputs(width, height)
        masks, iou = self.run(embedding, coords, labels, previous_logits)
        if prompt.uses_multimask and previous_logits is None:
            idx = 1 + int(np.argmax(iou[1:]))
        else:
            idx = 0
        masks = finish_masks(masks, coords, labels, previous_logits, guide, [idx])
        return masks[idx], float(iou[idx]), idx


def multimask_prompt(labels: np.ndarray, mask_input: np.ndarray | None) -> bool:
    """A single positive point (and the padding point), no box, no previous mask."""
    return mask_input is None and np.asarray(labels).reshape(-1).tolist() == [1.0, -1.0]


def finish_masks(
    masks: np.ndarray,
    coords: np.ndarray,
    labels: np.ndarray,
    mask_input: np.ndarray | None,
    guide: Guide | None,
    outputs: list[int],
) -> np.ndarray:
    """The decoder's raw outputs [4, 256, 256] -> what the page shows: `finish_at` on the
    256-cell frame, snapped with `edge_snap.snap_masks` when there is a guide."""
    from .edge_snap import snap_masks

    snap_fn = None if guide is None else (lambda m, o: snap_masks(m, guide, o))
    return finish_at(masks, prompt_cells(coords), labels, mask_input, outputs, snap_fn)


def finish_at(
    masks: np.ndarray,
    cells: np.ndarray,
    labels: np.ndarray,
    mask_input: np.ndarray | None,
    outputs: list[int],
    snap_fn: Callable[[np.ndarray, list[int]], np.ndarray] | None = None,
) -> np.ndarray:
    """The page's chain on any square grid (logits [M, L, L], the prompt's cells [N, 2], labels
    [N]): `drop_islands_at`, the click rule on `outputs` (`click_rule.enforce_clicks_at`), then,
    with `snap_fn(masks, outputs)`, snapping and the click rule once more."""
    from .click_rule import enforce_clicks_at  # it builds on this module's grid

    out = enforce_clicks_at(drop_islands_at(masks, cells, labels, mask_input), cells, labels, outputs)
    if snap_fn is None:
        return out
    return enforce_clicks_at(snap_fn(out, outputs), cells, labels, outputs)


def mask_from_logits(low_res: np.ndarray, width: int, height: int) -> np.ndarray:
    """Binary mask [height, width] (bool) from chosen low-res logits."""
    return upscale_logits(low_res, width, height) > 0.0
