"""Encoder benchmark: seconds per image, file to stored embedding, beside the official SamPredictor.

    .venv/bin/python -m bench.encoder [--arch vit_b] [--repeats 3]

Uses a random-weight official-format checkpoint (timings do not depend on the weights) and the
demo images. Prints JSON: median seconds per image of our pipeline (load, preprocess, encoder,
save .npy) and of `SamPredictor.set_image` + `get_image_embedding`, with their cosine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor

from annotator_backend.demo import DEMO_IMAGES
from annotator_backend.embeddings import embed_file, save_embedding
from annotator_backend.images import load_rgb
from annotator_backend.sam_factory import build_sam


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def run(arch: str, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_sam(arch)
    images = sorted(DEMO_IMAGES.glob("*.jpg"))[: max(1, repeats)]
    ours, official, cosines = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        embed_file(model, images[0])  # warm-up
        for path in images:
            start = time.perf_counter()
            emb = embed_file(model, path)
            save_embedding(Path(tmp) / f"{path.stem}.npy", emb)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            predictor = SamPredictor(model)
            predictor.set_image(load_rgb(path))
            ref = predictor.get_image_embedding().numpy()
            official.append(time.perf_counter() - start)
            cosines.append(_cosine(emb, ref))
    return {
        "arch": arch,
        "images": len(images),
        "torch_threads": torch.get_num_threads(),
        "ours_s_per_image": round(statistics.median(ours), 3),
        "official_s_per_image": round(statistics.median(official), 3),
        "speedup": round(statistics.median(official) / statistics.median(ours), 2),
        "cosine_min": round(min(cosines), 6),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--arch", default="vit_b")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(json.dumps({"encoder": run(args.arch, args.repeats)}, indent=2))


if __name__ == "__main__":
    main()
