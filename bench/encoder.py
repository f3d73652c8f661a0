"""Encoder benchmark: seconds per image from file to stored embedding, beside the official pipeline.

    .venv/bin/python -m bench.encoder [--archs vit_b,bootstrap] [--repeats 2] [--quick]

Ours is the real `annotator embed` path (`embeddings.embed_images` on a temporary instance:
reading and resizing image N+1 and writing embedding N-1 overlap with encoding image N; SDPA
attention; a bf16 copy of the encoder where the CPU has native bf16). The anchor, in the same run on the same
images, is the official `SamPredictor.set_image` + `get_image_embedding` in fp32 on a separate,
unmodified model with the same weights, saving the fp32 array. Passes alternate (ours, official,
ours, ...) and each figure is the median over passes. Quality: cosine of our stored embedding to
the official one, and the IoU of 1-click masks decoded from each (the browser's decoder rules).
Weights are random for vit_b (timings do not depend on them); the bootstrap model uses its
shipped weights when they exist.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry
from sqlalchemy import delete

from annotator_backend.config import Settings
from annotator_backend.db import session_scope, upgrade
from annotator_backend.decoding import OnnxDecoder, Prompt, mask_from_logits
from annotator_backend.demo import DEMO_IMAGES
from annotator_backend.embeddings import embed_images, load_embedding
from annotator_backend.fast_encoder import resolve_precision
from annotator_backend.images import add_image, load_rgb
from annotator_backend.model_registry import BOOTSTRAP_WEIGHTS, ensure_onnx, import_checkpoint
from annotator_backend.models import Embedding
from annotator_backend.projects import create_project
from annotator_backend.sam_factory import build_sam, load_sam

CLICKS = ((0.5, 0.5), (0.3, 0.4), (0.7, 0.6), (0.45, 0.75))  # 1-click prompts, fractions of w/h


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _checkpoint(arch: str, folder: Path) -> tuple[Path, bool]:
    """An official-format state dict of `arch` (random weights unless the bootstrap ships)."""
    if arch == "bootstrap" and BOOTSTRAP_WEIGHTS.exists():
        return BOOTSTRAP_WEIGHTS, True
    torch.manual_seed(0)
    model = build_sam(arch) if arch == "bootstrap" else sam_model_registry[arch](checkpoint=None)
    path = folder / f"{arch}_random.pth"
    torch.save(model.state_dict(), path)
    return path, False


def _official_pass(model: torch.nn.Module, images: list[Path], out: Path) -> tuple[list[float], dict]:
    """SamPredictor, fp32, file to saved array; returns seconds per image and the embeddings."""
    seconds, embs = [], {}
    predictor = SamPredictor(model)
    for path in images:
        start = time.perf_counter()
        predictor.set_image(load_rgb(path))
        emb = predictor.get_image_embedding().numpy()
        np.save(out / f"{path.stem}.npy", emb)
        seconds.append(time.perf_counter() - start)
        embs[path.name] = emb
    return seconds, embs


def run_arch(arch: str, images: list[Path], repeats: int, precision: str = "auto") -> dict:
    """Alternating passes of ours and the official pipeline on `images` for one architecture."""
    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data",
            database_url=f"sqlite:///{root / 'db.sqlite3'}",
            redis_url=None,
            secret_key="bench",
            port=0,
            encoder_precision=precision,
        )
        upgrade(settings.database_url)
        ckpt, trained = _checkpoint(arch, root)
        official_model = load_sam(ckpt, arch)  # a separate, unmodified model with the same weights
        ours_s, official_s, official_embs = [], [], {}
        with session_scope(settings.database_url) as s:
            version = import_checkpoint(s, settings, ckpt, arch, activate=True)
            project = create_project(s, "bench", ["object"])
            rows = [add_image(s, settings, project, p.read_bytes(), p.name) for p in images]
            s.commit()
            embed_images(s, settings, rows[:1], version, progress=False)  # warm-up (and model load)
            for _ in range(repeats):
                shutil.rmtree(settings.embeddings_dir, ignore_errors=True)
                s.execute(delete(Embedding))
                s.commit()
                start = time.perf_counter()
                embed_images(s, settings, rows, version, progress=False)
                ours_s.append((time.perf_counter() - start) / len(rows))
                seconds, official_embs = _official_pass(official_model, images, root)
                official_s.append(statistics.mean(seconds))
            decoder = OnnxDecoder(ensure_onnx(version), threads=1)
            cosines, ious = [], []
            for image, path in zip(rows, images, strict=True):
                row = s.query(Embedding).filter_by(image_id=image.id).one()
                ours = load_embedding(Path(row.path))
                ref = official_embs[path.name]
                cosines.append(_cosine(ours, ref))
                w, h = image.width, image.height
                for fx, fy in CLICKS:
                    prompt = Prompt(points=[(fx * w, fy * h)], labels=[1])
                    a = mask_from_logits(decoder.predict(ours, prompt, w, h)[0], w, h)
                    b = mask_from_logits(decoder.predict(ref, prompt, w, h)[0], w, h)
                    ious.append(_iou(a, b))
            stored = sum(f.stat().st_size for f in settings.embeddings_dir.rglob("*.npy")) / len(rows)
    ours_med, off_med = statistics.median(ours_s), statistics.median(official_s)
    return {
        "weights": "shipped" if trained else "random",
        "images": len(images),
        "precision": resolve_precision(precision, torch.device("cpu")),
        "ours_s_per_image": round(ours_med, 3),
        "official_s_per_image": round(off_med, 3),
        "speedup": round(off_med / ours_med, 2),
        "ours_passes_s": [round(v, 3) for v in ours_s],
        "official_passes_s": [round(v, 3) for v in official_s],
        "cosine_min": round(min(cosines), 5),
        "mask_iou_1click_min": round(min(ious), 4),
        "mask_iou_1click_mean": round(statistics.mean(ious), 4),
        "stored_bytes_per_image": int(stored),
    }


def run(quick: bool = False, archs: tuple[str, ...] | None = None, repeats: int = 2) -> dict:
    """The `encoder` entry of bench/results/latest.json."""
    images = sorted(DEMO_IMAGES.glob("*.jpg"))
    if quick:
        archs, images, repeats = archs or ("bootstrap",), images[:1], 1
    archs = archs or ("vit_b", "bootstrap")
    result = {
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": resolve_precision("auto", torch.device("cpu")) == "bf16",
        "load_average_before": round(os.getloadavg()[0], 2),
    }
    for arch in archs:
        result[arch] = run_arch(arch, images, repeats)
    if not quick and "vit_b" in archs:  # what the precision lever buys on its own: SDPA in fp32
        result["vit_b_sdpa_fp32"] = run_arch("vit_b", images[:2], 1, precision="fp32")
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="vit_b,bootstrap")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    archs = tuple(a for a in args.archs.split(",") if a)
    print(json.dumps({"encoder": run(args.quick, archs, args.repeats)}, indent=2))


if __name__ == "__main__":
    main()
