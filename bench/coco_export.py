"""COCO export benchmark: seconds and peak RSS to export 100k masks, beside a pycocotools anchor.

A fresh SQLite database (`alembic upgrade head`) gets one project of 2000 images (640x480) with
50 masks each, bulk-inserted with SQLAlchemy core: compressed RLEs from pycocotools of random
ellipses (some with holes) and rectangles, with their stored area and bbox; 1 mask in 20 is
deleted, so the export filters. Two exporters run, each in its own subprocess, its peak RSS read
from os.wait4's rusage:

- ours: `annotator export coco PROJECT --out FILE` (annotator_backend/coco_export.py);
- anchor: a straightforward pycocotools script: every row through the ORM at once, area and
  bbox of each RLE from pycocotools (mask.area / mask.toBbox; with `--anchor decode`, the naive
  way: mask.decode to a full bitmap, then sum and nonzero), the COCO dict built in memory,
  json.dump.

Both outputs are loaded with pycocotools COCO() and checked (annotation count, areas and bboxes
against the RLEs). Targets for ours at 100k masks: under 60 s and under 500 MB peak RSS.

    .venv/bin/python -m bench.coco_export [--images 2000] [--per-image 50] [--anchor rle|decode] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from annotator_backend.db import make_engine, upgrade
from annotator_backend.models import Category, Image, Mask, MaskStatus, Project

REPO_ROOT = Path(__file__).resolve().parents[1]
ANNOTATOR = Path(sys.executable).with_name("annotator")
PROJECT = "bench"
WIDTH, HEIGHT = 640, 480
TARGET_S, TARGET_RSS_MB = 60.0, 500.0


def random_masks(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """`n` distinct RLEs (str counts) of ellipses, some holed, and rectangles, with area and bbox."""
    yy, xx = np.ogrid[:HEIGHT, :WIDTH]
    out = []
    while len(out) < n:
        cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        rx, ry = rng.uniform(4, 160), rng.uniform(4, 120)
        if rng.random() < 0.3:
            m = (np.abs(xx - cx) <= rx) & (np.abs(yy - cy) <= ry)
        else:
            m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            if rng.random() < 0.3:
                m &= ((xx - cx) / (rx / 3)) ** 2 + ((yy - cy) / (ry / 3)) ** 2 > 1
        if not m.any():
            continue
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        out.append(
            {
                "rle_counts": rle["counts"].decode("ascii"),
                "area": int(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            }
        )
    return out


def build_database(url: str, n_images: int, per_image: int, seed: int = 0) -> dict[str, int]:
    """Migrate `url` and fill it: one project, `n_images` images, `per_image` masks each."""
    upgrade(url)
    rng = np.random.default_rng(seed)
    pool = random_masks(min(1000, n_images * per_image), rng)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            pid = conn.execute(insert(Project).values(name=PROJECT).returning(Project.id)).scalar_one()
            cats = [
                conn.execute(
                    insert(Category).values(project_id=pid, name=f"c{i}", position=i).returning(Category.id)
                ).scalar_one()
                for i in range(5)
            ]
            conn.execute(
                insert(Image),
                [
                    {
                        "project_id": pid,
                        "sha256": f"{i:064x}",
                        "stored_name": f"{i:064x}.png",
                        "original_name": f"img_{i:05d}.png",
                        "width": WIDTH,
                        "height": HEIGHT,
                        "status": "done",
                    }
                    for i in range(n_images)
                ],
            )
            image_ids = list(conn.scalars(select(Image.id).where(Image.project_id == pid).order_by(Image.id)))
            accepted, k = 0, 0
            for start in range(0, len(image_ids), 200):
                rows = []
                for image_id in image_ids[start : start + 200]:
                    for _ in range(per_image):
                        status = MaskStatus.deleted.value if k % 20 == 19 else MaskStatus.accepted.value
                        accepted += status == MaskStatus.accepted.value
                        rows.append(
                            pool[k % len(pool)]
                            | {
                                "image_id": image_id,
                                "category_id": cats[k % len(cats)],
                                "status": status,
                                "source": "annotator",
                                "active_ms": 1000 + k % 30000,
                                "clicks": k % 7,
                                "strokes": k % 3,
                            }
                        )
                        k += 1
                conn.execute(insert(Mask), rows)
    finally:
        engine.dispose()
    return {"images": n_images, "masks": n_images * per_image, "accepted": accepted}


def naive_export(url: str, project: str, out: Path, decode: bool = False) -> int:
    """The anchor: all rows through the ORM, area/bbox by pycocotools (from a decoded bitmap
    with `decode`), the whole dict in memory, one json.dump."""
    engine = make_engine(url)
    with Session(engine) as session:
        proj = session.scalars(select(Project).where(Project.name == project)).one()
        images = session.scalars(select(Image).where(Image.project_id == proj.id).order_by(Image.id)).all()
        sizes = {im.id: (im.height, im.width) for im in images}
        masks = session.scalars(
            select(Mask)
            .join(Image)
            .where(
                Image.project_id == proj.id,
                Mask.status.in_([MaskStatus.accepted.value, MaskStatus.verified.value]),
            )
            .order_by(Mask.id)
        ).all()
        coco: dict[str, Any] = {
            "images": [
                {"id": im.id, "file_name": im.original_name, "width": im.width, "height": im.height}
                for im in images
            ],
            "categories": [{"id": c.id, "name": c.name, "supercategory": ""} for c in proj.categories],
            "annotations": [],
        }
        for m in masks:
            h, w = sizes[m.image_id]
            rle = {"size": [h, w], "counts": m.rle_counts.encode("ascii")}
            if decode:
                binary = mask_utils.decode(rle)
                ys, xs = np.nonzero(binary)
                x0, y0 = int(xs.min()), int(ys.min())
                area, bbox = int(binary.sum()), [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
            else:
                area, bbox = int(mask_utils.area(rle)), mask_utils.toBbox(rle).tolist()
            coco["annotations"].append(
                {
                    "id": m.id,
                    "image_id": m.image_id,
                    "category_id": m.category_id,
                    "segmentation": {"size": [h, w], "counts": m.rle_counts},
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
    engine.dispose()
    with open(out, "w", encoding="utf-8") as f:
        json.dump(coco, f)
    return len(coco["annotations"])


# Runs argv[1:] and prints its wall seconds and rusage as JSON. A child forked from a big process
# (pytest with torch loaded) inherits that process's peak RSS in its ru_maxrss (Linux records the
# old memory map's high-water mark at exec); forked from this small interpreter it does not.
_MEASURE = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=sys.stderr)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - t0,
                  "maxrss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def _run_child(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `cmd` in its own process; its wall seconds, CPU seconds and peak RSS."""
    res = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )
    lines = res.stdout.strip().splitlines()
    usage = json.loads(lines[-1]) if res.returncode == 0 and lines else {"rc": res.returncode}
    if usage["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({usage['rc']}):\n{res.stderr[-4000:]}")
    return {
        "seconds": round(usage["seconds"], 2),
        "peak_rss_mb": round(usage["maxrss_kb"] / 1024, 1),
        "cpu_s": round(usage["cpu_s"], 2),
    }


def _validate(path: Path, expected: int, sample: int = 200) -> dict[str, Any]:
    """Load with pycocotools; count, and areas/bboxes of a sample against their RLEs."""
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        coco = COCO(str(path))
    ids = coco.getAnnIds()
    rng = np.random.default_rng(1)
    bad = 0
    for ann in coco.loadAnns([int(i) for i in rng.choice(ids, min(sample, len(ids)), replace=False)]):
        rle = coco.annToRLE(ann)
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        bad += int(mask_utils.area(rle)) != ann["area"] or bbox != [float(v) for v in ann["bbox"]]
    if len(ids) != expected or bad:
        raise AssertionError(f"{path.name}: {len(ids)} annotations (expected {expected}), {bad} bad")
    return {"annotations": len(ids), "out_mb": round(path.stat().st_size / 2**20, 1)}


def run(
    quick: bool = False, images: int | None = None, per_image: int = 50, anchor: str = "rle"
) -> dict[str, Any]:
    """Build the database, run both exporters, validate (default 2000x50 masks; quick: 100x20).
    `anchor`: "rle" (pycocotools area/toBbox on the RLE) or "decode" (full bitmaps, slow)."""
    if anchor not in ("rle", "decode"):
        raise ValueError("anchor is rle or decode")
    images = images or (100 if quick else 2000)
    per_image = 20 if quick else per_image
    with tempfile.TemporaryDirectory(prefix="bench-coco-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'db.sqlite3'}"
        t0 = time.perf_counter()
        built = build_database(url, images, per_image)
        generate_s = time.perf_counter() - t0
        env = dict(os.environ)
        env.pop("REDIS_URL", None)
        env.update(
            DATABASE_URL=url,
            ANNOTATOR_DATA_DIR=str(root / "data"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        )
        load_before = os.getloadavg()
        ours = _run_child([str(ANNOTATOR), "export", "coco", PROJECT, "--out", str(root / "ours.json")], env)
        ours |= _validate(root / "ours.json", built["accepted"])
        anchor_cmd = [sys.executable, "-m", "bench.coco_export", "--anchor", anchor]
        anchor_cmd += ["--naive", url, str(root / "naive.json")]
        how = "mask.decode + sum/nonzero" if anchor == "decode" else "mask.area/toBbox on RLE"
        naive: dict[str, Any] = {"area_bbox": how}
        naive |= _run_child(anchor_cmd, env) | _validate(root / "naive.json", built["accepted"])
        load_after = os.getloadavg()
        db_mb = (root / "db.sqlite3").stat().st_size / 2**20
    return {
        "db": "sqlite",
        **built,
        "image_size": [WIDTH, HEIGHT],
        "db_mb": round(db_mb, 1),
        "generate_s": round(generate_s, 1),
        "ours": ours,
        "anchor_pycocotools": naive,
        "speedup": round(naive["seconds"] / ours["seconds"], 2),
        "rss_ratio": round(naive["peak_rss_mb"] / ours["peak_rss_mb"], 2),
        "targets": {
            "seconds": TARGET_S,
            "peak_rss_mb": TARGET_RSS_MB,
            "met": ours["seconds"] < TARGET_S and ours["peak_rss_mb"] < TARGET_RSS_MB,
        },
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in load_after],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke size: 100 images x 20 masks")
    ap.add_argument("--images", type=int)
    ap.add_argument("--per-image", type=int, default=50)
    ap.add_argument("--anchor", choices=("rle", "decode"), default="rle", help="the anchor's area/bbox")
    ap.add_argument("--naive", nargs=2, metavar=("DB_URL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.naive:  # the anchor exporter, run as a child
        naive_export(args.naive[0], PROJECT, Path(args.naive[1]), decode=args.anchor == "decode")
        return 0
    result = run(args.quick, args.images, args.per_image, args.anchor)
    print(json.dumps({"coco_export": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
