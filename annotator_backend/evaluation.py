"""Interactive-segmentation evaluation with the standard (RITM) click protocol.

Per object: the first click at the interior point of the object farthest from its boundary; each
next click at the interior point farthest from the boundary of the error region (RITM's rule:
distance transforms of the missed and the extra pixels, with the image border counting as
boundary; the larger maximum decides the click's sign and place), up to 20 clicks. Reported:
NoC@85 and NoC@90 (20 when never reached), mIoU after 1, 3 and 5 clicks. GrabCut's ``ignore/``
pixels are left out of the IoU (and of the error regions).

Decoding is the browser's: `decoding.OnnxDecoder` on the decoder written by
`onnx_export.export_decoder`, with the browser's multimask/single-mask choice, islands rule
(`decoding.drop_islands`) and edge snapping (`edge_snap`, guided by the image), optionally
feeding the previous low-res logits back as ``mask_input``. Embeddings are computed with the
model's own image encoder under the official preprocessing.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from segment_anything.modeling import Sam

from .decoding import OnnxDecoder, Prompt, mask_from_logits
from .edge_snap import Guide, image_guide
from .onnx_export import export_decoder

# Feeding the previous logits back measured better with the bootstrap model (GrabCut mIoU@3 0.591
# against 0.560, NoC@90 18.94 against 19.22; bootstrap/MODEL_CARD.md), and the browser does it too.
DEFAULT_FEED_MASK = True


@dataclass
class EvalConfig:
    """Protocol settings (recorded with every result)."""

    max_clicks: int = 20
    thresholds: tuple[float, ...] = (0.85, 0.90)
    miou_at: tuple[int, ...] = (1, 3, 5)
    feed_mask: bool = DEFAULT_FEED_MASK  # previous low-res logits as mask_input
    edge_snap: bool = True  # snap the decoded logits to the image's edges, as the page does
    stop_at_iou: float | None = 0.90  # stop once reached (and miou_at clicks made); later IoUs carry over


def compute_embedding(model: Sam, image: np.ndarray) -> np.ndarray:
    """Official preprocessing + image encoder: uint8 [H, W, 3] -> float32 [1, 256, 64, 64]."""
    from .training.embeddings import embed_image

    return embed_image(model, image)[None].numpy().astype(np.float32)


def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of two bool masks [H, W], leaving `ignore` pixels out."""
    if ignore is not None:
        keep = ~ignore
        pred, gt = pred & keep, gt & keep
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


def next_click(
    pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[float, float, bool] | None:
    """The protocol's next click: (x, y) pixel centre and sign, or None when nothing is wrong.

    pred/gt/ignore bool [H, W]. The first click is this with an empty prediction.
    """
    fn = gt & ~pred
    fp = pred & ~gt
    if ignore is not None:
        fn, fp = fn & ~ignore, fp & ~ignore
    dfn = ndimage.distance_transform_edt(np.pad(fn, 1))[1:-1, 1:-1]
    dfp = ndimage.distance_transform_edt(np.pad(fp, 1))[1:-1, 1:-1]
    mfn, mfp = dfn.max(), dfp.max()
    if mfn == 0 and mfp == 0:
        return None
    positive = bool(mfn > mfp)
    d, m = (dfn, mfn) if positive else (dfp, mfp)
    y, x = np.argwhere(d == m)[0]
    return float(x) + 0.5, float(y) + 0.5, positive


DecodeFn = Callable[[Prompt, np.ndarray | None], tuple[np.ndarray, np.ndarray]]


def click_session(
    decode: DecodeFn, gt: np.ndarray, ignore: np.ndarray | None, cfg: EvalConfig
) -> tuple[list[float], list[tuple[float, float, bool]]]:
    """Run the protocol on one object.

    `decode(prompt, previous_logits)` returns (low-res logits, bool mask [H, W]). Returns the IoU
    after each click (length max_clicks) and the clicks made.
    """
    pred = np.zeros_like(gt)
    prompt = Prompt(points=[], labels=[])
    prev: np.ndarray | None = None
    ious: list[float] = []
    clicks: list[tuple[float, float, bool]] = []
    min_clicks = max(cfg.miou_at, default=1)
    for _ in range(cfg.max_clicks):
        click = next_click(pred, gt, ignore)
        if click is None:  # perfect already
            ious.append(ious[-1] if ious else 1.0)
            continue
        clicks.append(click)
        prompt.points.append((click[0], click[1]))
        prompt.labels.append(1 if click[2] else 0)
        logits, pred = decode(prompt, prev if cfg.feed_mask else None)
        prev = logits
        ious.append(mask_iou(pred, gt, ignore))
        if cfg.stop_at_iou is not None and ious[-1] >= cfg.stop_at_iou and len(ious) >= min_clicks:
            break
    ious += [ious[-1]] * (cfg.max_clicks - len(ious))
    return ious, clicks


def noc(ious: list[float], threshold: float, max_clicks: int) -> int:
    """Clicks needed to reach `threshold` (max_clicks when never)."""
    for i, v in enumerate(ious[:max_clicks]):
        if v >= threshold:
            return i + 1
    return max_clicks


def summarize(all_ious: list[list[float]], cfg: EvalConfig) -> dict[str, float]:
    """NoC@thr and mIoU@k over objects."""
    arr = np.array(all_ious, dtype=np.float64).reshape(len(all_ious), -1)
    out: dict[str, float] = {"objects": len(all_ious)}
    for t in cfg.thresholds:
        out[f"NoC@{round(t * 100)}"] = (
            float(np.mean([noc(r, t, cfg.max_clicks) for r in all_ious])) if all_ious else 0.0
        )
    for k in cfg.miou_at:
        if k <= cfg.max_clicks:
            out[f"mIoU@{k}"] = float(arr[:, k - 1].mean()) if all_ious else 0.0
    return out


def dataset_objects(
    dataset_dir: Path, limit: int | None = None
) -> Iterable[tuple[str, Path, np.ndarray, np.ndarray | None]]:
    """(name, image path, gt bool [H, W], ignore bool [H, W] or None) of a folder in the shared layout.

    `limit` counts images. DAVIS-style ``benchmark_masks/`` (objects merged) are used when present.
    """
    from .training.data import folder_samples

    dataset_dir = Path(dataset_dir)
    bench = dataset_dir / "benchmark_masks"
    for sample in folder_samples(dataset_dir)[:limit]:
        img = Path(sample.image)  # type: ignore[arg-type]
        ign_path = dataset_dir / "ignore" / f"{img.stem}.png"
        ignore = np.asarray(Image.open(ign_path).convert("L")) > 127 if ign_path.is_file() else None
        merged = sorted(bench.glob(f"{img.stem}.*")) if bench.is_dir() else []
        paths = merged[:1] or list(sample.masks)
        for m in paths:
            gt = np.asarray(Image.open(m).convert("L")) > 127  # type: ignore[arg-type]
            yield Path(m).stem, img, gt, ignore  # type: ignore[arg-type]


def evaluate(
    model: Sam,
    dataset_dir: Path,
    limit: int | None = None,
    cfg: EvalConfig | None = None,
    decoder_path: Path | None = None,
    threads: int = 1,
    per_object: bool = False,
) -> dict:
    """Evaluate `model` on a folder laid out like ``../shared/datasets/*``; JSON-serialisable result.

    The decoder is exported with `export_decoder` (to `decoder_path`, else a temporary file) and
    run through `decoding.OnnxDecoder`.
    """
    cfg = cfg or EvalConfig()
    model = model.eval()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(decoder_path) if decoder_path else Path(tmp) / "decoder.onnx"
        if decoder_path is None or not path.is_file():
            export_decoder(model, path)
        decoder = OnnxDecoder(path, threads=threads)
        all_ious: list[list[float]] = []
        rows = []
        cache: dict[Path, tuple[np.ndarray, Guide | None, int, int]] = {}
        for name, img_path, gt, ignore in dataset_objects(dataset_dir, limit):
            if img_path not in cache:
                cache.clear()
                image = np.asarray(Image.open(img_path).convert("RGB"))
                guide = image_guide(image) if cfg.edge_snap else None
                cache[img_path] = (compute_embedding(model, image), guide, image.shape[1], image.shape[0])
            emb, guide, w, h = cache[img_path]

            def decode(
                prompt: Prompt, prev: np.ndarray | None, emb=emb, guide=guide, w=w, h=h
            ) -> tuple[np.ndarray, np.ndarray]:
                logits, _, _ = decoder.predict(emb, prompt, w, h, prev, guide)
                return logits, mask_from_logits(logits, w, h)

            ious, clicks = click_session(decode, gt, ignore, cfg)
            all_ious.append(ious)
            if per_object:
                rows.append({"mask": name, "ious": [round(v, 4) for v in ious], "clicks": len(clicks)})
    result = {
        "dataset": Path(dataset_dir).name,
        "summary": summarize(all_ious, cfg),
        "settings": {
            **asdict(cfg),
            "limit": limit,
            "decoder": "onnx (decoding.OnnxDecoder)",
            "protocol": "RITM: click at max distance transform of the larger error, border = boundary",
            "seconds": round(time.time() - t0, 1),
        },
    }
    if per_object:
        result["objects"] = rows
    return result
