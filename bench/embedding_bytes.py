"""Embedding bytes benchmark (issue 6): float16 embeddings on disk and on the wire.

For a random-weight official vit_b and the bootstrap model, on the demo photographs: bytes per
image on disk (.npy) and on the wire (GET /api/images/<id>/embedding) against the float32
anchor (4 MiB), what gzip would save and cost, and the IoU of masks decoded with
`decoding.OnnxDecoder` from the stored (float16) embedding against the float32 one (encoder
run in fp32): single clicks, click sequences (positive, negative, positive, each step fed the
previous logits) and boxes. Prints JSON {"embedding_bytes": ...}.

    .venv/bin/python -m bench.embedding_bytes [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from annotator_backend.decoding import OnnxDecoder, Prompt, mask_from_logits
from annotator_backend.demo import DEMO_IMAGES
from annotator_backend.embeddings import embed_file, load_embedding, read_embedding, save_embedding
from annotator_backend.images import load_rgb
from annotator_backend.onnx_export import export_decoder
from annotator_backend.sam_factory import load_sam
from tests.browser.browser_harness import random_vit_b

BOOTSTRAP = Path(__file__).resolve().parents[1] / "annotator_backend" / "bootstrap" / "bootstrap_v1.pt"
FP32_BYTES = 4 * 256 * 64 * 64
TARGET_IOU = 0.99


def prompt_sets(w: int, h: int, quick: bool) -> dict[str, list[list[Prompt]]]:
    """Prompt sequences in image pixels, by kind; each step lists all points so far."""
    grid = [(fx, fy) for fy in (0.3, 0.5, 0.7) for fx in (0.3, 0.5, 0.7)]
    grid = grid[::2] if quick else grid
    at = lambda fx, fy: (fx * w, fy * h)  # noqa: E731
    single = [[Prompt([at(fx, fy)], [1])] for fx, fy in grid]
    multi = []
    for fx, fy in grid[:3] if quick else grid:
        pts = [at(fx, fy), at(1 - fy, fx), at((fx + 0.5) / 2, (fy + 0.5) / 2)]
        labels = [1, 0, 1]
        multi.append([Prompt(pts[: k + 1], labels[: k + 1]) for k in range(3)])
    boxes = [[Prompt([], [], box=(*at(x0, y0), *at(x0 + 0.4, y0 + 0.4)))] for x0, y0 in grid[:3]]
    return {"one_click": single, "clicks": multi, "box": boxes}


def decode(
    dec: OnnxDecoder, emb: np.ndarray, steps: list[Prompt], w: int, h: int
) -> tuple[np.ndarray, np.ndarray]:
    """The page's rules: multimask for a lone positive click, previous logits fed back."""
    prev = None
    for prompt in steps:
        coords, labels = prompt.model_inputs(w, h)
        masks, iou = dec.run(emb, coords, labels, prev)
        idx = 1 + int(np.argmax(iou[1:])) if prompt.uses_multimask and prev is None else 0
        prev = masks[idx]
    return prev, mask_from_logits(prev, w, h)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def gzip_cost(data: bytes, level: int) -> dict:
    """Size ratio and times of gzip; below `break_even_mbit_s` the transfer it saves outweighs
    compressing per request and decompressing, below `precompressed_break_even_mbit_s` when the
    compressed file is kept on disk (decompression only)."""
    t = time.perf_counter()
    packed = gzip.compress(data, compresslevel=level)
    compress_s = time.perf_counter() - t
    t = time.perf_counter()
    gzip.decompress(packed)
    decompress_s = time.perf_counter() - t
    saved_mbit = (len(data) - len(packed)) * 8 / 1e6
    return {
        "ratio": round(len(packed) / len(data), 4),
        "compress_ms": round(compress_s * 1000, 1),
        "decompress_ms": round(decompress_s * 1000, 1),
        "break_even_mbit_s": round(saved_mbit / (compress_s + decompress_s), 1),
        "precompressed_break_even_mbit_s": round(saved_mbit / decompress_s, 1),
    }


def bench_model(name: str, checkpoint: Path, arch: str, images: list[Path], quick: bool, tmp: Path) -> dict:
    model = load_sam(checkpoint, arch)
    dec = OnnxDecoder(export_decoder(model, tmp / f"{name}.onnx"))
    per_kind: dict[str, list[float]] = {}
    nonempty, logit_err, rel_err, disk, wire, gz1, gz6, gz32 = 0, [], [], [], [], [], [], []
    for path in images:
        w, h = load_rgb(path).shape[1::-1]
        emb32 = embed_file(model, path, precision="fp32")  # the worst case for float16 storage
        file = tmp / f"{name}-{path.stem}.npy"
        save_embedding(file, emb32)
        stored = load_embedding(file)
        disk.append(file.stat().st_size)
        body = read_embedding(file).tobytes()
        wire.append(len(body))
        gz1.append(gzip_cost(body, 1))
        gz6.append(gzip_cost(body, 6))
        gz32.append(gzip_cost(emb32.astype("<f4").tobytes(), 6)["ratio"])
        rel_err.append(float(np.abs(stored - emb32).max() / np.abs(emb32).max()))
        for kind, seqs in prompt_sets(w, h, quick).items():
            for steps in seqs:
                l32, m32 = decode(dec, emb32, steps, w, h)
                l16, m16 = decode(dec, stored, steps, w, h)
                per_kind.setdefault(kind, []).append(iou(m32, m16))
                nonempty += bool(m32.any())
                logit_err.append(float(np.abs(l32 - l16).max()))
    # The server's encoder ("auto": bf16 autocast where the CPU has it) gives values float16 holds
    # exactly when they are bf16-rounded: then storage loses nothing.
    served = embed_file(model, images[0])
    save_embedding(tmp / "served.npy", served)
    served_err = float(np.abs(load_embedding(tmp / "served.npy") - served).max())
    all_iou = [v for vals in per_kind.values() for v in vals]
    return {
        "images": [p.name for p in images],
        "stored_dtype": str(read_embedding(file).dtype),
        "disk_bytes_per_image": int(statistics.median(disk)),
        "wire_bytes_per_image": int(statistics.median(wire)),
        "gzip_level1": {k: round(statistics.median(g[k] for g in gz1), 4) for k in gz1[0]},
        "gzip_level6": {k: round(statistics.median(g[k] for g in gz6), 4) for k in gz6[0]},
        "gzip_level6_ratio_of_fp32": round(statistics.median(gz32), 4),
        "max_relative_error": max(rel_err),
        "mask_iou_fp16_vs_fp32": {
            kind: {"min": round(min(v), 5), "mean": round(statistics.mean(v), 5), "n": len(v)}
            for kind, v in per_kind.items()
        },
        "mask_iou_min": round(min(all_iou), 5),
        "masks_nonempty": f"{nonempty}/{len(all_iou)}",
        "low_res_logit_max_abs_diff": round(max(logit_err), 5),
        "server_encoder_embedding_float16_max_abs_err": served_err,
    }


def run(quick: bool = False) -> dict:
    """Both models; `quick`: two images for the bootstrap model, one for vit_b, fewer prompts."""
    torch.manual_seed(0)
    images = sorted(DEMO_IMAGES.glob("*.jpg"))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-embedding-bytes-") as tmp:
        models = {
            "bootstrap_v1": bench_model(
                "bootstrap_v1", BOOTSTRAP, "bootstrap", images[:2] if quick else images, quick, Path(tmp)
            ),
            "vit_b_random": bench_model(
                "vit_b_random", random_vit_b(), "vit_b", images[:1] if quick else images[:2], quick, Path(tmp)
            ),
        }
    wire = max(m["wire_bytes_per_image"] for m in models.values())
    disk = max(m["disk_bytes_per_image"] for m in models.values())
    return {
        "anchor_fp32_bytes_per_image": FP32_BYTES,
        "disk_bytes_per_image": disk,
        "wire_bytes_per_image": wire,
        "wire_ratio_vs_fp32": round(wire / FP32_BYTES, 4),
        "wire_encoding": "identity (raw little-endian float16; X-Embedding-Dtype header)",
        "mask_iou_min": min(m["mask_iou_min"] for m in models.values()),
        "target_iou": TARGET_IOU,
        "models": models,
        "quick": quick,
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    print(json.dumps({"embedding_bytes": run(args.quick)}, indent=2))


if __name__ == "__main__":
    main()
