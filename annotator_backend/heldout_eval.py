"""Evaluate models on a list of objects (a project's held-out masks) with the browser's decoder.

The protocol is `evaluation`'s (RITM clicks, NoC@85/90, mIoU@k) and decoding runs the exported
ONNX decoder through `decoding.OnnxDecoder`, as the browser does. Several models are evaluated in
one pass over the images, so models that share an image encoder (a decoder-only round and its
parent) share each image's embedding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from segment_anything.modeling import Sam

from .decoding import OnnxDecoder, Prompt, mask_from_logits
from .edge_snap import image_guide
from .evaluation import EvalConfig, click_session, compute_embedding, summarize
from .images import load_rgb

# (name, image path, ground-truth bool [H, W], ignore bool [H, W] or None)
HeldOutObject = tuple[str, Path, np.ndarray, np.ndarray | None]


@dataclass
class Candidate:
    """A model to evaluate: its weights (for the encoder), its exported decoder, an encoder key."""

    model: Sam
    decoder_path: Path
    encoder_key: str  # candidates with equal keys share embeddings


def evaluate_objects(
    candidates: Sequence[Candidate],
    objects: Iterable[HeldOutObject],
    cfg: EvalConfig | None = None,
    threads: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, float]]:
    """Run the click protocol on every object for every candidate; one `summarize` dict each.

    `progress(n)` is called after each object with the number of objects done."""
    cfg = cfg or EvalConfig()
    decoders = [OnnxDecoder(c.decoder_path, threads=threads) for c in candidates]
    ious: list[list[list[float]]] = [[] for _ in candidates]
    image_key: Path | None = None
    embeddings: dict[str, np.ndarray] = {}
    for _name, path, gt, ignore in objects:
        if path != image_key:  # objects come grouped by image: keep one image's embeddings
            image_key, embeddings = path, {}
            rgb = load_rgb(path)
            h, w = rgb.shape[:2]
            guide = image_guide(rgb) if cfg.edge_snap else None
        for i, (cand, decoder) in enumerate(zip(candidates, decoders, strict=True)):
            if cand.encoder_key not in embeddings:
                embeddings[cand.encoder_key] = compute_embedding(cand.model.eval(), rgb)
            emb = embeddings[cand.encoder_key]

            def decode(
                prompt: Prompt, prev: np.ndarray | None, emb=emb, decoder=decoder, guide=guide, w=w, h=h
            ) -> tuple[np.ndarray, np.ndarray]:
                logits, _, _ = decoder.predict(emb, prompt, w, h, prev, guide)
                return logits, mask_from_logits(logits, w, h)

            ious[i].append(click_session(decode, gt, ignore, cfg)[0])
        if progress is not None:
            progress(len(ious[0]))
    return [summarize(rows, cfg) for rows in ious]
