"""Train the bootstrap model from scratch, export its weights and evaluate them on held-out sets.

    .venv/bin/python scripts/train_bootstrap.py --minutes 150          # train (resumes if killed)
    .venv/bin/python scripts/train_bootstrap.py --export-only          # export + evaluate the last checkpoint
    .venv/bin/python scripts/train_bootstrap.py --decoder-only --init MODEL.pt  # decoder on cached embeddings

Trains on coco128_panoptic, davis345 and coco_mval only; GrabCut and Berkeley stay held out.
Checkpoints and the log go to --ckpt-dir (outside git, default /work/checkpoints/bootstrap/);
running the same command again resumes from ``last.pt`` there. At the end (or with
--export-only) the EMA weights are written as a plain state dict to
annotator_backend/bootstrap/bootstrap_v1.pt (fp16-stored) and evaluated with the RITM protocol.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from annotator_backend.sam_factory import build_bootstrap_sam, load_sam  # noqa: E402
from annotator_backend.training import (  # noqa: E402
    AugmentConfig,
    CropDataset,
    SessionConfig,
    TrainConfig,
    load_samples,
    train,
)
from annotator_backend.training.embeddings import EmbeddingDataset  # noqa: E402
from annotator_backend.training.warmup import prompt_warmup  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets"
TRAIN_SETS = ("coco128_panoptic", "davis345", "coco_mval")
HELD_OUT = ("grabcut", "berkeley")
OUT = REPO / "annotator_backend" / "bootstrap" / "bootstrap_v1.pt"
log = logging.getLogger("train_bootstrap")


def export_weights(ckpt_dir: Path, out: Path, use_ema: bool = True) -> Path:
    """Write the (EMA) weights of ``ckpt_dir/last.pt`` as a fp16-stored plain state dict."""
    state = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=False)
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
    plain = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(plain, tmp)
    tmp.replace(out)
    load_sam(out, "bootstrap")  # must load through the factory
    log.info(
        "exported step %d (%.1f training min) to %s (%.1f MB)",
        state["step"],
        state["elapsed"] / 60,
        out,
        out.stat().st_size / 2**20,
    )
    return out


def evaluate_weights(path: Path, sets: list[str], limit: int | None, ckpt_dir: Path) -> dict:
    """RITM-protocol metrics of the exported weights on `sets`, also written as JSON."""
    from annotator_backend.evaluation import evaluate

    model = load_sam(path, "bootstrap")
    results = {}
    for name in sets:
        t = time.time()
        results[name] = evaluate(model, DATASETS / name, limit=limit)
        log.info("%s: %s (%.0fs)", name, json.dumps(results[name]["summary"]), time.time() - t)
    (ckpt_dir / f"metrics_{int(time.time())}.json").write_text(json.dumps(results, indent=1))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=57.0, help="training-time budget (summed over resumes)")
    ap.add_argument("--steps", type=int, default=None, help="step budget (optional)")
    ap.add_argument("--ckpt-dir", type=Path, default=Path("/work/checkpoints/bootstrap"))
    ap.add_argument(
        "--crop",
        type=int,
        default=1024,
        help="training frame side (multiple of 64); 1024 is the test resolution, 512 is 4x cheaper",
    )
    ap.add_argument(
        "--windows", action="store_true", help="train on windows of the 1024 frame, not whole frames"
    )
    ap.add_argument("--batch", type=int, default=2, help="images per step")
    ap.add_argument("--masks", type=int, default=3, help="masks per image per step")
    ap.add_argument(
        "--min-area", type=float, default=0.002, help="masks under this fraction of the frame are dropped"
    )
    ap.add_argument("--grad-passes", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.5, help="focal loss alpha")
    ap.add_argument(
        "--prompt-warmup-steps", type=int, default=250, help="fresh runs: decoder warm-up on blank frames"
    )
    ap.add_argument(
        "--init-encoder",
        type=Path,
        default=None,
        help="fresh runs: image encoder weights from this checkpoint",
    )
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="fresh runs: start from this whole-model state dict (e.g. an earlier bootstrap_v1.pt)",
    )
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu", help='"cuda" to train on a GPU (the data stays on the CPU)')
    ap.add_argument("--ema", type=float, default=0.998, help="weight EMA decay")
    ap.add_argument("--ckpt-every", type=float, default=180.0, help="seconds between checkpoints")
    ap.add_argument(
        "--zoom", type=float, nargs=2, default=(1.0, 2.0), help="whole frames: zoom range of the image"
    )
    ap.add_argument(
        "--datasets",
        type=Path,
        default=DATASETS,
        help="folder holding the training sets (e.g. a packed copy: scripts/pack_datasets.py)",
    )
    ap.add_argument(
        "--decoder-only",
        action="store_true",
        help="with --init: train the prompt encoder and mask decoder on cached 1024-px embeddings "
        "of the frozen image encoder (each image and its mirror; cheap enough for a CPU)",
    )
    ap.add_argument(
        "--edge-snap",
        action="store_true",
        help="with --decoder-only: sessions decode as the page does, snapped to the image's edges",
    )
    ap.add_argument(
        "--page-rules",
        action="store_true",
        help="the next click and mask_input see the page's islands and click rules too",
    )
    ap.add_argument("--clicks", type=int, default=8, help="corrective points per simulated session")
    ap.add_argument(
        "--blind-prob", type=float, default=0.25, help="sessions that see a blank embedding (prompts only)"
    )
    ap.add_argument(
        "--zoom-frames", type=int, default=0, help="decoder-only: extra crops per image, zoomed 1.3-2x"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    ap.add_argument("--limit", type=int, default=None, help="images per training set (pilots)")
    ap.add_argument("--export-only", action="store_true", help="export + evaluate the last checkpoint")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--eval-limit", type=int, default=None)
    ap.add_argument("--eval-sets", default=",".join(HELD_OUT))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.decoder_only and args.init is None:
        ap.error("--decoder-only continues a model: give --init")
    if args.edge_snap and not args.decoder_only:
        ap.error("--edge-snap trains on whole frames: give --decoder-only")

    args.ckpt_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        handlers=[logging.FileHandler(args.ckpt_dir / "train.log"), logging.StreamHandler()],
    )
    torch.set_num_threads(args.threads)
    if not args.export_only:
        t = time.time()
        samples = load_samples([args.datasets / n for n in TRAIN_SETS], limit=args.limit)
        log.info(
            "loaded %d images, %d masks from %s in %.0fs",
            len(samples),
            sum(len(s.masks) for s in samples),
            ", ".join(TRAIN_SETS),
            time.time() - t,
        )
        aug = AugmentConfig(
            crop=args.crop,
            gt_res=args.crop // 2,
            max_masks=args.masks,
            full_frame=not args.windows,
            min_area=args.min_area,
            zoom=tuple(args.zoom),
            uint8=args.device != "cpu",
        )
        cfg = TrainConfig(
            mode="decoder" if args.decoder_only else "full",
            minutes=args.minutes,
            steps=args.steps,
            batch_images=args.batch,
            lr=args.lr,
            ckpt_dir=args.ckpt_dir,
            workers=0 if args.decoder_only else args.workers,  # decoder: the items are in memory
            device=args.device,
            ema=args.ema,
            ckpt_every_s=args.ckpt_every,
            session=SessionConfig(
                clicks=args.clicks,
                grad_passes=args.grad_passes,
                focal_alpha=args.alpha,
                blind_prob=args.blind_prob,
                edge_snap=args.edge_snap,
                page_rules=args.page_rules,
            ),
            warmup=args.warmup,
            align_init=True,
        )
        log.info("config %s %s argv %s", aug, cfg, sys.argv)
        sam = build_bootstrap_sam()
        resumed = (args.ckpt_dir / "last.pt").is_file()
        # continue a model; decoder-only runs also when resumed, to embed with --init's frozen encoder
        if args.init is not None and (not resumed or args.decoder_only):
            sam.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
            cfg.align_init = False
            log.info("whole model initialised from %s", args.init)
        elif not resumed:  # a fresh run: optional encoder init, prompt warm-up
            if args.init_encoder is not None:
                state = torch.load(args.init_encoder, map_location="cpu", weights_only=False)
                state = state.get("ema") or state.get("model") or state
                enc = {
                    k[len("image_encoder.") :]: v for k, v in state.items() if k.startswith("image_encoder.")
                }
                sam.image_encoder.load_state_dict(enc)
                log.info("image encoder initialised from %s", args.init_encoder)
            if args.prompt_warmup_steps > 0:
                t = time.time()
                stats = prompt_warmup(sam, steps=args.prompt_warmup_steps)
                log.info(
                    "prompt warm-up: %d steps in %.0fs, %s", args.prompt_warmup_steps, time.time() - t, stats
                )
                cfg.align_init = False  # the warm-up already did it, and trained from there
        if args.decoder_only:
            t = time.time()
            dataset = EmbeddingDataset(
                samples,
                sam,
                max_masks=args.masks,
                cache_dir=args.ckpt_dir / "embeddings",
                model_key=hashlib.sha256(args.init.read_bytes()).hexdigest(),
                min_area=args.min_area,
                guides=args.edge_snap,
                zoom_frames=args.zoom_frames,
            )
            log.info("embedded %d frames (images and mirrors) in %.0fs", len(dataset), time.time() - t)
        else:
            dataset = CropDataset(samples, aug)
        summary = train(sam, dataset, cfg)
        log.info("finished: %s", json.dumps(summary))
    out = export_weights(args.ckpt_dir, args.out)
    if not args.no_eval:
        res = evaluate_weights(
            out, [s for s in args.eval_sets.split(",") if s], args.eval_limit, args.ckpt_dir
        )
        print(json.dumps({k: v["summary"] for k, v in res.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
