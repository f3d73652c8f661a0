"""COCO run-length encoding: validation and conversion with pycocotools."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


class RLEError(ValueError):
    """An RLE that is malformed or does not fit its image."""


def _compressed_runs(counts: str) -> list[int]:
    """Runs of a COCO compressed counts string (pycocotools' LEB128-like, delta-coded format)."""
    runs: list[int] = []
    data = counts.encode("ascii")
    i = 0
    while i < len(data):
        value, shift, more = 0, 0, True
        while more:
            if i >= len(data):
                raise RLEError("truncated counts string")
            c = data[i] - 48
            if c < 0 or c > 63:
                raise RLEError("invalid character in counts string")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            i += 1
            shift += 1
            if not more and (c & 0x10):
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise RLEError("negative run in counts string")
        runs.append(value)
    return runs


def normalise(rle: Any, height: int, width: int) -> dict[str, Any]:
    """Check an RLE against its image and return it compressed: {"size": [h, w], "counts": str}.

    Accepts uncompressed runs (a list of non-negative ints, column-major, starting with zeros)
    or a compressed counts string.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RLEError("an RLE is an object with 'size' and 'counts'")
    size = rle["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise RLEError("'size' must be [height, width]")
    if size != [height, width]:
        raise RLEError(f"RLE size {size} does not fit the image ({height}x{width})")
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise RLEError("uncompressed counts must be non-negative integers")
        if sum(counts) != height * width:
            raise RLEError(f"runs cover {sum(counts)} pixels, the image has {height * width}")
        out = mask_utils.frPyObjects({"size": size, "counts": counts}, height, width)
    elif isinstance(counts, str):
        try:
            total = sum(_compressed_runs(counts))
        except UnicodeEncodeError as exc:
            raise RLEError("counts string must be ASCII") from exc
        if total != height * width:
            raise RLEError(f"runs cover {total} pixels, the image has {height * width}")
        out = {"size": size, "counts": counts.encode("ascii")}
    else:
        raise RLEError("'counts' must be a list of ints or a string")
    counts_bytes = out["counts"]
    return {"size": [height, width], "counts": counts_bytes.decode("ascii")}


def encode(mask: np.ndarray) -> dict[str, Any]:
    """Binary mask [H, W] -> compressed RLE with str counts."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode(rle: dict[str, Any]) -> np.ndarray:
    """Compressed RLE -> bool mask [H, W]."""
    counts = rle["counts"]
    raw = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(raw).astype(bool)


def area_and_bbox(rle: dict[str, Any]) -> tuple[int, list[float]]:
    """Pixel area and COCO bbox [x, y, w, h] of a compressed RLE."""
    raw = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(mask_utils.area(raw)), [float(v) for v in mask_utils.toBbox(raw)]
