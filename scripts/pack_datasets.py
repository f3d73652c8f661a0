"""Pack data sets in the shared layout into a small copy, to train on a machine they don't reach.

    .venv/bin/python scripts/pack_datasets.py OUT_DIR [--sets coco128_panoptic,davis345,coco_mval]

Images are re-encoded (JPEG at --quality by default; their longest side capped at --max-side),
masks are stored as 1-bit PNGs of the same size. The copy keeps the layout (``images/``,
``masks/<stem>_<k>.png``), so `training.folder_samples` reads it as it reads the originals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from annotator_backend.training.data import folder_samples  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets"


def pack(src: Path, dst: Path, quality: int, max_side: int, fmt: str) -> int:
    """Copy one data set; returns the bytes written."""
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    total = 0
    for sample in folder_samples(src):
        assert isinstance(sample.image, Path)
        img = Image.open(sample.image).convert("RGB")
        size = img.size
        k = min(1.0, max_side / max(size))
        if k < 1.0:
            img = img.resize((round(size[0] * k), round(size[1] * k)), Image.Resampling.LANCZOS)
        out = dst / "images" / f"{sample.image.stem}.{fmt}"
        img.save(out, quality=quality)
        total += out.stat().st_size
        for m in sample.masks:
            assert isinstance(m, Path)
            mask = Image.open(m).convert("L")
            if k < 1.0:
                mask = mask.resize(img.size, Image.Resampling.BILINEAR)
            out = dst / "masks" / m.name
            mask.point(lambda v: 255 if v > 127 else 0).convert("1").save(out, optimize=True)
            total += out.stat().st_size
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sets", default="coco128_panoptic,davis345,coco_mval")
    ap.add_argument("--source", type=Path, default=DATASETS)
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--format", default="jpg", choices=("jpg", "webp"))
    args = ap.parse_args(argv)
    for name in args.sets.split(","):
        size = pack(args.source / name, args.out / name, args.quality, args.max_side, args.format)
        print(f"{name}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
