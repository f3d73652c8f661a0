"""Cached full-frame embeddings for decoder-only training (the image encoder stays frozen).

Each image is embedded once with the official preprocessing (and, optionally, once more
mirrored), then every item is the cached ``[256, 64, 64]`` embedding and up to K of its masks in
the padded 1024 frame at 512x512 (`GT_RES`): the window is the whole frame (offset 0).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from .data import Sample
from .snap import frame_colors

# side of the target masks in the padded 1024 frame: finer than the 256 x 256 logits, which the
# losses upsample bilinearly (as the page upscales them), so the decoder learns where a boundary
# falls inside a logit cell; high-IoU refinement depends on it
GT_RES = 512


def embed_image(sam: Sam, image: np.ndarray) -> torch.Tensor:
    """Official preprocessing + encoder: uint8 [H, W, 3] -> float32 [256, 64, 64]."""
    resized = ResizeLongestSide(sam.image_encoder.img_size).apply_image(image)
    x = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
    with torch.inference_mode():
        return sam.image_encoder(sam.preprocess(x))[0].float().clone()


def frame_mask(mask: np.ndarray, res: int = GT_RES) -> torch.Tensor:
    """Bool [H, W] -> bool [res, res] in the padded 1024 frame (area-resampled, thresholded)."""
    h, w = mask.shape
    s = res / max(h, w)
    rh, rw = max(1, round(h * s)), max(1, round(w * s))
    m = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=(rh, rw), mode="area")[0, 0]
    out = torch.zeros(res, res, dtype=torch.bool)
    out[:rh, :rw] = m > 0.5
    return out


def zoomed_crop(
    image: np.ndarray, masks: Sequence[np.ndarray], rng: random.Random, zoom: tuple[float, float] = (1.3, 2.0)
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A crop of `image` [H, W, 3] with its aspect ratio, 1/zoom of its size, around the box of
    one of `masks` (bool [H, W]) chosen at random, and the masks cropped alike."""
    h, w = image.shape[:2]
    z = rng.uniform(*zoom)
    ch, cw = max(1, round(h / z)), max(1, round(w / z))
    ys, xs = np.nonzero(masks[rng.randrange(len(masks))])
    cy = (ys.min() + ys.max()) / 2 if len(ys) else h / 2
    cx = (xs.min() + xs.max()) / 2 if len(xs) else w / 2
    y0 = int(min(max(0, round(cy - ch / 2)), h - ch))
    x0 = int(min(max(0, round(cx - cw / 2)), w - cw))
    crop = np.ascontiguousarray(image[y0 : y0 + ch, x0 : x0 + cw])
    return crop, [np.ascontiguousarray(m[y0 : y0 + ch, x0 : x0 + cw]) for m in masks]


class EmbeddingDataset(torch.utils.data.Dataset):
    """Items ``embedding`` [256, 64, 64], ``masks`` [K, 512, 512] (GT_RES), ``valid`` [K], ``offset``
    [2] (0, 0)
    and, with `guides`, the image's edge-snapping guide: ``colors`` [3, 256, 256] and ``extent``
    [2] (`snap.frame_colors`).

    Embeddings are computed at construction with `sam`'s encoder (cached under `cache_dir` when
    given, keyed by the image bytes and `model_key`). `flip` adds mirrored copies; `zoom_frames`
    adds that many crops per image around one of its objects (`zoomed_crop`), which the encoder
    sees at 1.3-2x. Masks covering less than `min_area` of the padded frame are dropped, and
    images left without masks.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        sam: Sam,
        max_masks: int = 4,
        flip: bool = True,
        cache_dir: Path | None = None,
        model_key: str = "",
        seed: int = 0,
        min_area: float = 0.0,
        guides: bool = False,
        zoom_frames: int = 0,
    ) -> None:
        sam = sam.eval()
        self.items: list[tuple[torch.Tensor, list[torch.Tensor]]] = []
        self.guides: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.max_masks = max_masks
        self._rng = random.Random(seed)
        for s in samples:
            image, masks = s.load()
            kept = [(m, f) for m in masks if (f := frame_mask(m)).float().mean() >= min_area]
            if not kept:
                continue
            variants = [(image, [f for _, f in kept])]
            if flip:
                mirrored = [frame_mask(np.ascontiguousarray(m[:, ::-1])) for m, _ in kept]
                variants.append((np.ascontiguousarray(image[:, ::-1]), mirrored))
            for _ in range(zoom_frames):
                img, crops = zoomed_crop(image, [m for m, _ in kept], self._rng)
                frames = [f for m in crops if (f := frame_mask(m)).float().mean() >= min_area]
                if frames:
                    variants.append((img, frames))
            for img, frames in variants:
                emb = self._cached(sam, img, cache_dir, model_key)
                self.items.append((emb.to(torch.float16), frames))
                if guides:
                    self.guides.append(frame_colors(img))

    @staticmethod
    def _cached(sam: Sam, image: np.ndarray, cache_dir: Path | None, model_key: str) -> torch.Tensor:
        if cache_dir is None:
            return embed_image(sam, image)
        key = hashlib.sha256(image.tobytes() + str(image.shape).encode() + model_key.encode()).hexdigest()[
            :24
        ]
        path = Path(cache_dir) / f"{key}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True).float()
        emb = embed_image(sam, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(emb.half(), path)
        return emb

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        emb, masks = self.items[index]
        K = self.max_masks
        order = list(range(len(masks)))
        self._rng.shuffle(order)
        out = torch.zeros(K, GT_RES, GT_RES)  # float targets
        for i, j in enumerate(order[:K]):
            out[i] = masks[j]
        item = {
            "embedding": emb.float(),
            "masks": out,
            "valid": torch.arange(K) < min(K, len(masks)),
            "offset": torch.zeros(2, dtype=torch.long),
        }
        if self.guides:
            item["colors"], item["extent"] = self.guides[index]
        return item
