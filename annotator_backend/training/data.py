"""Training samples and augmentation for small data sets.

A *sample* is one image and its object masks. Where they come from stays abstract: a folder in
the shared layout (``images/<stem>.*``, ``masks/<stem>_<k>.png``), or the tool's stored masks
(a list of ``Sample(image_path_or_array, [mask, ...])``).

`CropDataset` turns samples into training crops of the 1024 frame: the image is resized as at
inference (longest side 1024) times a random scale, an ``S x S`` window is cut (mostly around a
random object), flipped, colour-jittered, and with some probability an object of another image
is pasted in. Each item also says where the window sits in the 1024 frame (a multiple of 16,
so the decoder's positional encoding of the window matches the full-frame one).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PIXEL_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], np.float32)


@dataclass
class Sample:
    """One image and its object masks (paths, or arrays: image HxWx3 uint8, masks HxW bool)."""

    image: Path | np.ndarray
    masks: list[Path | np.ndarray]

    def load(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """(image [H, W, 3] uint8, masks list of [H, W] bool)."""
        img = self.image
        if not isinstance(img, np.ndarray):
            img = np.asarray(Image.open(img).convert("RGB"))
        masks = [
            m if isinstance(m, np.ndarray) else np.asarray(Image.open(m).convert("L")) > 127
            for m in self.masks
        ]
        return img, [np.asarray(m, bool) for m in masks]

    def materialize(self) -> Sample:
        """The same sample with its image and masks decoded into memory."""
        img, masks = self.load()
        return Sample(img, list(masks))


def folder_samples(dataset_dir: Path) -> list[Sample]:
    """Samples of a folder in the shared layout; masks are `masks/<stem>_<k>.png`."""
    dataset_dir = Path(dataset_dir)
    by_stem: dict[str, list[Path]] = {}
    for m in sorted((dataset_dir / "masks").glob("*.png")):
        stem, _, k = m.stem.rpartition("_")
        if k.isdigit():
            by_stem.setdefault(stem, []).append(m)
    out = []
    for img in sorted((dataset_dir / "images").iterdir()):
        if img.suffix.lower() in IMAGE_EXTS and img.stem in by_stem:
            masks = sorted(by_stem[img.stem], key=lambda p: int(p.stem.rpartition("_")[2]))
            out.append(Sample(img, list(masks)))
    return out


def load_samples(dirs: Iterable[Path], limit: int | None = None) -> list[Sample]:
    """Decoded samples of several folders (each truncated to `limit` images if given)."""
    out: list[Sample] = []
    for d in dirs:
        out += [s.materialize() for s in folder_samples(Path(d))[:limit]]
    return out


def normalize(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float [3, H, W] with SAM's pixel mean/std (as `Sam.preprocess`)."""
    x = (image.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def normalized_images(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The encoder input of a batch: ``image`` as is, or ``image_u8`` [B, 3, S, S] uint8 with
    ``area`` [B, S, S] normalised on the batch's device (zero outside the image)."""
    if "image" in batch:
        return batch["image"]
    x = batch["image_u8"].float()
    mean = torch.as_tensor(PIXEL_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.as_tensor(PIXEL_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std * batch["area"][:, None]


@dataclass
class AugmentConfig:
    """Augmentation of `CropDataset`. Scales multiply the inference scale (longest side 1024)."""

    crop: int = 512  # window side S (multiple of 64)
    gt_res: int = 256  # side of the returned target masks
    max_masks: int = 4  # K masks per crop
    scale_range: tuple[float, float] = (0.4, 1.25)  # log-uniform
    object_centred: float = 0.8  # probability the window is placed around a random object
    flip: float = 0.5
    jitter: float = 0.25  # brightness/contrast/saturation strength
    paste: float = 0.35  # probability of pasting one object of another image
    paste_size: tuple[float, float] = (0.15, 0.6)  # pasted object's longest side / S
    min_area: float = 0.002  # masks under this fraction of the window are dropped
    # full_frame: the window is a whole (smaller) 1024 frame: the image's longest side is S times a
    # zoom, the window sits at offset 0 and the decoder sees the frame's positional encoding at
    # S/16 cells (see simulate.run_session). A from-scratch decoder learns to localise prompts
    # this way; on windows at random offsets it did not (pilot: no progress in 125 steps).
    full_frame: bool = False
    zoom: tuple[float, float] = (1.0, 2.0)  # full_frame: log-uniform zoom of the image in the frame
    # uint8 items (``image_u8`` + ``area``), normalised where the model runs: a quarter of the
    # bytes through the loader's shared memory, which matters for large crops on a GPU
    uint8: bool = False
    extra: dict = field(default_factory=dict)


def _resize_window(
    arr: np.ndarray,
    box: tuple[float, float, float, float],
    size: int,
    scale: float,
    resample: Image.Resampling,
) -> np.ndarray:
    """Cut `box` (x0, y0, x1, y1 in source pixels, may leave the image) resized to size x size."""
    h, w = arr.shape[:2]
    x0, y0, x1, y1 = box
    out = np.zeros((size, size, *arr.shape[2:]), arr.dtype)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if ix1 <= ix0 or iy1 <= iy0:
        return out
    ox0, oy0 = round((ix0 - x0) * scale), round((iy0 - y0) * scale)
    ow = min(size - ox0, max(1, round((ix1 - ix0) * scale)))
    oh = min(size - oy0, max(1, round((iy1 - iy0) * scale)))
    if ow <= 0 or oh <= 0:
        return out
    img = Image.fromarray(arr)
    part = img.resize((ow, oh), resample, box=(ix0, iy0, ix1, iy1))
    out[oy0 : oy0 + oh, ox0 : ox0 + ow] = np.asarray(part)
    return out


class CropDataset(torch.utils.data.Dataset):
    """Augmented training windows of in-memory samples.

    Item: ``image`` float [3, S, S] (normalised, zero outside the image), ``masks`` float
    [K, R, R] (R = gt_res; 1 object, 0 not), ``valid`` bool [K], ``offset`` long [2] (x, y of
    the window in the 1024 frame, multiples of 16).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        cfg: AugmentConfig | None = None,
        length: int | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = [s if isinstance(s.image, np.ndarray) else s.materialize() for s in samples]
        self.cfg = cfg or AugmentConfig()
        self.length = length or len(self.samples)
        self.seed = seed
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Reseed the augmentation (call per epoch; workers reseed through `worker_init`)."""
        self._rng = random.Random(self.seed * 1_000_003 + epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        for attempt in range(5):  # a sample that fails to augment must not end a long run
            try:
                return self._item(index + attempt)
            except (ValueError, IndexError, ZeroDivisionError):
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng
        cfg = self.cfg
        s = self.samples[index % len(self.samples)]
        image, masks = s.image, s.masks
        assert isinstance(image, np.ndarray)
        if rng.random() < cfg.flip:  # flip the source, so padding stays right/bottom as at inference
            image = np.ascontiguousarray(image[:, ::-1])
            masks = [m[:, ::-1] for m in masks]
        h, w = image.shape[:2]
        S = cfg.crop
        lo, hi = cfg.zoom if cfg.full_frame else cfg.scale_range
        base = (S if cfg.full_frame else 1024.0) / max(h, w)
        scale = base * math.exp(rng.uniform(math.log(lo), math.log(hi)))
        sw, sh = w * scale, h * scale
        m = masks[rng.randrange(len(masks))] if masks else None
        if m is not None and m.any() and rng.random() < cfg.object_centred:
            sub = 4 if m[::4, ::4].any() else 1  # tiny objects can vanish when subsampled
            ys, xs = np.nonzero(m[::sub, ::sub])
            cx, cy = (xs.mean() + 0.5) * sub * scale, (ys.mean() + 0.5) * sub * scale
            cx += rng.uniform(-0.25, 0.25) * S
            cy += rng.uniform(-0.25, 0.25) * S
            x0 = min(max(cx - S / 2, 0.0), max(sw - S, 0.0))
            y0 = min(max(cy - S / 2, 0.0), max(sh - S, 0.0))
        else:
            x0, y0 = rng.uniform(0, max(sw - S, 0.0)), rng.uniform(0, max(sh - S, 0.0))
        x0, y0 = float(round(x0)), float(round(y0))
        box = (x0 / scale, y0 / scale, (x0 + S) / scale, (y0 + S) / scale)
        crop = _resize_window(image, box, S, scale, Image.Resampling.BILINEAR)
        valid_area = np.zeros((S, S), bool)
        valid_area[: max(0, min(S, round(sh - y0))), : max(0, min(S, round(sw - x0)))] = True
        R = cfg.gt_res
        gts = [self._mask_window(m, box, R) for m in masks]
        if rng.random() < cfg.paste and len(self.samples) > 1:
            crop, gts = self._paste(crop, gts, valid_area, rng)
        crop = self._jitter(crop, rng)
        gts = [g for g in gts if g.mean() >= cfg.min_area]
        rng.shuffle(gts)
        gts = gts[: cfg.max_masks]
        K = cfg.max_masks
        out_masks = np.zeros((K, R, R), np.float32)
        for i, g in enumerate(gts):
            out_masks[i] = g
        ox = 0 if cfg.full_frame else min(int(x0) // 16 * 16, 1024 - S)
        oy = 0 if cfg.full_frame else min(int(y0) // 16 * 16, 1024 - S)
        if cfg.uint8:
            image_item = {
                "image_u8": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
                "area": torch.from_numpy(valid_area),
            }
        else:
            image_item = {"image": normalize(crop) * torch.from_numpy(valid_area.copy())[None]}
        item = {
            **image_item,
            "masks": torch.from_numpy(out_masks),
            "valid": torch.arange(K) < len(gts),
            "offset": torch.tensor([ox, oy], dtype=torch.long),
        }
        if cfg.full_frame:
            item["frame"] = torch.tensor(True)
        return item

    @staticmethod
    def _mask_window(m: np.ndarray, box: tuple[float, float, float, float], R: int) -> np.ndarray:
        """Mask window resized to R x R (bilinear then threshold), float 0/1."""
        win = _resize_window(
            m.astype(np.uint8) * 255, box, R, R / (box[2] - box[0]), Image.Resampling.BILINEAR
        )
        return (win > 127).astype(np.float32)

    def _paste(
        self, crop: np.ndarray, gts: list[np.ndarray], valid: np.ndarray, rng: random.Random
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Paste one random object of another sample at a random place and scale."""
        cfg = self.cfg
        src = self.samples[rng.randrange(len(self.samples))]
        if not src.masks:
            return crop, gts
        img, m = src.image, src.masks[rng.randrange(len(src.masks))]
        assert isinstance(img, np.ndarray)
        ys, xs = np.nonzero(m)
        if len(ys) < 64:
            return crop, gts
        bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        S = cfg.crop
        side = rng.uniform(*cfg.paste_size) * S
        k = side / max(bx1 - bx0, by1 - by0)
        pw, ph = max(2, round((bx1 - bx0) * k)), max(2, round((by1 - by0) * k))
        obj = np.asarray(Image.fromarray(img[by0:by1, bx0:bx1]).resize((pw, ph), Image.Resampling.BILINEAR))
        alpha = (
            np.asarray(
                Image.fromarray(m[by0:by1, bx0:bx1].astype(np.uint8) * 255).resize(
                    (pw, ph), Image.Resampling.BILINEAR
                )
            )
            > 127
        )
        px, py = rng.randrange(0, max(1, S - pw)), rng.randrange(0, max(1, S - ph))
        pw, ph = min(pw, S - px), min(ph, S - py)
        alpha = alpha[:ph, :pw] & valid[py : py + ph, px : px + pw]
        crop = crop.copy()
        region = crop[py : py + ph, px : px + pw]
        region[alpha] = obj[:ph, :pw][alpha]
        full = np.zeros((S, S), np.uint8)
        full[py : py + ph, px : px + pw] = alpha * 255
        R = cfg.gt_res
        pasted = (np.asarray(Image.fromarray(full).resize((R, R), Image.Resampling.BILINEAR)) > 127).astype(
            np.float32
        )
        gts = [g * (1 - pasted) for g in gts] + [pasted]
        return crop, gts

    def _jitter(self, crop: np.ndarray, rng: random.Random) -> np.ndarray:
        """Random brightness, contrast, saturation and per-channel gain."""
        j = self.cfg.jitter
        if j <= 0:
            return np.ascontiguousarray(crop)
        x = crop.astype(np.float32)
        x = x * rng.uniform(1 - j, 1 + j)
        mean = x.mean()
        x = (x - mean) * rng.uniform(1 - j, 1 + j) + mean
        grey = x.mean(axis=2, keepdims=True)
        x = (x - grey) * rng.uniform(1 - j, 1 + j) + grey
        x = x * np.array([rng.uniform(1 - j / 3, 1 + j / 3) for _ in range(3)], np.float32)
        return np.clip(x, 0, 255).astype(np.uint8)


def worker_init(worker_id: int) -> None:
    """DataLoader worker init: give each worker its own augmentation stream."""
    info = torch.utils.data.get_worker_info()
    if info is not None and isinstance(info.dataset, (CropDataset, SyntheticShapes)):
        ds = info.dataset
        ds._rng = random.Random(torch.initial_seed() % (2**31) + worker_id)


class SyntheticShapes(torch.utils.data.Dataset):
    """Random coloured rectangles and ellipses on textured noise: a warm-up task and test data.

    Items as `CropDataset`: ``image`` [3, S, S], ``masks`` [K, R, R], ``valid`` [K], ``offset``
    [2] (random, multiples of 16, so the decoder learns prompt positions over the whole frame).
    Teaching a from-scratch decoder to localise a point or box prompt takes a few hundred steps
    here, far fewer than on natural images.
    """

    def __init__(
        self, length: int = 10_000, crop: int = 256, gt_res: int = 128, max_masks: int = 3, seed: int = 0
    ) -> None:
        self.length, self.crop, self.gt_res, self.max_masks = length, crop, gt_res, max_masks
        self.seed = seed
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng
        S, R, K = self.crop, self.gt_res, self.max_masks
        nrng = np.random.default_rng(rng.randrange(2**31))
        base = nrng.integers(0, 256, 3).astype(np.float32)
        img = base + nrng.normal(0, rng.uniform(5, 40), (S // 8, S // 8, 3)).repeat(8, 0).repeat(8, 1)
        img = img + nrng.normal(0, rng.uniform(2, 20), (S, S, 3))
        yy, xx = np.mgrid[:S, :S]
        masks: list[np.ndarray] = []
        for _ in range(rng.randint(1, K + 1)):
            cx, cy = rng.uniform(0, S), rng.uniform(0, S)
            a, b = rng.uniform(0.06, 0.4) * S, rng.uniform(0.06, 0.4) * S
            if rng.random() < 0.5:
                m = (np.abs(xx - cx) < a) & (np.abs(yy - cy) < b)
            else:
                m = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
            colour = nrng.integers(0, 256, 3).astype(np.float32)
            img[m] = colour + nrng.normal(0, rng.uniform(2, 25), (int(m.sum()), 3))
            masks = [p & ~m for p in masks] + [m]
        out = np.zeros((K, R, R), np.float32)
        kept = [m for m in masks if m.mean() > 0.002][:K]
        for i, m in enumerate(kept):
            out[i] = m.reshape(R, S // R, R, S // R).mean((1, 3)) > 0.5
        off = [rng.randrange(0, (1024 - S) // 16 + 1) * 16 for _ in range(2)]
        return {
            "image": normalize(np.clip(img, 0, 255).astype(np.uint8)),
            "masks": torch.from_numpy(out),
            "valid": torch.arange(K) < len(kept),
            "offset": torch.tensor(off, dtype=torch.long),
        }
