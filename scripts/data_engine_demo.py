"""Play one round of the data engine on a domain the bootstrap model never saw, and measure it.

    .venv/bin/python scripts/data_engine_demo.py [--dataset ../shared/datasets/berkeley] \
        [--minutes 8] [--mode decoder] [--lr 3e-5] [--no-edge-snap] [--out results.json]

1. A fresh instance (temporary folder) with the shipped bootstrap model active, as `make run` has.
2. The dataset's images are split in two halves by a stable hash of their names. The first half
   is imported into a project together with its masks (COCO import, source "import"), as if
   annotators had labelled them; the second half (the rest of the domain) is never imported.
3. Before: the active model's NoC@85/90 and mIoU@k on the rest, with the RITM protocol and the
   exported ONNX decoder (`annotator evaluate`'s code).
4. A retraining round on the project (`annotator retrain`'s code: train on the project's training
   split, compare parent and child on its fixed held-out split, register the child).
5. After: the child on the same rest. Prints JSON (before, after, the round's report).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from annotator_backend.coco_import import import_coco  # noqa: E402
from annotator_backend.config import Settings  # noqa: E402
from annotator_backend.db import session_scope, upgrade  # noqa: E402
from annotator_backend.evaluation import evaluate  # noqa: E402
from annotator_backend.images import add_image  # noqa: E402
from annotator_backend.model_registry import active_version, register_bootstrap  # noqa: E402
from annotator_backend.models import ModelVersion  # noqa: E402
from annotator_backend.projects import create_project  # noqa: E402
from annotator_backend.retrain import RoundConfig, run_round  # noqa: E402
from annotator_backend.sam_factory import load_sam  # noqa: E402
from annotator_backend.training.data import folder_samples  # noqa: E402

log = logging.getLogger("data_engine_demo")


def split(samples: list, fraction: float) -> tuple[list, list]:
    """(annotated, rest): a stable split by a hash of the image names."""
    ranked = sorted(samples, key=lambda s: hashlib.sha256(Path(s.image).name.encode()).hexdigest())
    cut = round(len(ranked) * fraction)
    return ranked[:cut], ranked[cut:]


def link_folder(samples: list, folder: Path) -> Path:
    """A folder in the shared layout (images/, masks/) of symlinks to `samples`."""
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for s in samples:
        (folder / "images" / Path(s.image).name).symlink_to(Path(s.image).resolve())
        for m in s.masks:
            (folder / "masks" / Path(m).name).symlink_to(Path(m).resolve())
    return folder


def coco_of(samples: list, path: Path) -> Path:
    """A COCO file (compressed RLE) of the samples' masks, category "object"."""
    images, anns = [], []
    for i, s in enumerate(samples, 1):
        w, h = PILImage.open(s.image).size
        images.append({"id": i, "file_name": Path(s.image).name, "width": w, "height": h})
        for m in s.masks:
            gt = np.asfortranarray((np.asarray(PILImage.open(m).convert("L")) > 127).astype(np.uint8))
            rle = mask_utils.encode(gt)
            rle["counts"] = rle["counts"].decode()
            anns.append(
                {"id": len(anns) + 1, "image_id": i, "category_id": 1, "segmentation": rle, "iscrowd": 0}
            )
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}
    path.write_text(json.dumps(coco))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "datasets" / "berkeley")
    ap.add_argument("--fraction", type=float, default=0.5, help="share of the images imported as labels")
    ap.add_argument("--minutes", type=float, default=8.0, help="the round's training budget")
    ap.add_argument("--mode", choices=("decoder", "full"), default="decoder")
    ap.add_argument("--lr", type=float, default=RoundConfig.lr)
    ap.add_argument(
        "--no-edge-snap",
        action="store_true",
        help="train the round on unsnapped logits (the page snaps them: see retrain.RoundConfig)",
    )
    ap.add_argument(
        "--train-options",
        type=json.loads,
        default={},
        help="training overrides as JSON, as `annotator retrain --options '{\"train_options\": ...}'`",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    started = time.time()
    annotated, rest = split(folder_samples(args.dataset), args.fraction)
    with tempfile.TemporaryDirectory(prefix="data-engine-demo-") as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data",
            database_url=f"sqlite:///{root / 'db.sqlite3'}",
            redis_url=None,
            secret_key="demo",
            port=0,
        )
        upgrade(settings.database_url)
        rest_dir = link_folder(rest, root / "rest")
        with session_scope(settings.database_url) as s:
            if register_bootstrap(s, settings) is None:
                raise SystemExit("the bootstrap weights are missing (annotator_backend/bootstrap/)")
            s.commit()
            base = active_version(s)
            assert base is not None
            project = create_project(s, f"{args.dataset.name}-loop", ["object"])
            for sample in annotated:
                add_image(s, settings, project, Path(sample.image).read_bytes(), Path(sample.image).name)
            s.flush()
            imported = import_coco(s, project, coco_of(annotated, root / "labels.json"))
            s.commit()
            log.info(
                "imported %d images with %d masks; %d images kept apart", len(annotated), imported, len(rest)
            )
            base_model = load_sam(Path(base.checkpoint_path), base.arch)
            before = evaluate(base_model, rest_dir)["summary"]
            log.info("before: %s", json.dumps(before))
            cfg = RoundConfig(
                project_id=project.id,
                sources=("import",),
                mode=args.mode,
                minutes=args.minutes,
                lr=args.lr,
                edge_snap=not args.no_edge_snap,
                train_options=args.train_options,
                name="data-engine demo round",
            )
            report = run_round(s, settings, cfg, progress=_log_progress())
            child = s.get(ModelVersion, report["version_id"])
            after = evaluate(load_sam(Path(child.checkpoint_path), child.arch), rest_dir)["summary"]
            log.info("after: %s", json.dumps(after))
    result = {
        "dataset": args.dataset.name,
        "annotated_images": len(annotated),
        "annotated_masks": imported,
        "rest_images": len(rest),
        "rest_objects": sum(len(s.masks) for s in rest),
        "round": {k: report[k] for k in ("parent", "child", "data", "seconds")},
        "train": {k: report["train"].get(k) for k in ("steps", "minutes", "seconds") if k in report["train"]},
        "rest_before": before,
        "rest_after": after,
        "settings": {
            "mode": args.mode,
            "minutes": args.minutes,
            "lr": args.lr,
            "edge_snap": not args.no_edge_snap,
            "train_options": args.train_options,
        },
        "total_seconds": round(time.time() - started, 1),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def _log_progress():  # noqa: ANN202
    last = {"t": 0.0}

    def report(p: dict) -> None:
        if time.time() - last["t"] > 30 or p.get("phase") != "training":
            last["t"] = time.time()
            log.info("round: %s", {k: v for k, v in p.items() if k != "curve"})

    return report


if __name__ == "__main__":
    raise SystemExit(main())
