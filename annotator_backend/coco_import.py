"""Import COCO annotations (RLE or polygons) as masks with source "import": all or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import rle as rlelib
from .models import Category, Image, Mask, MaskStatus, Project


class CocoImportError(ValueError):
    """A COCO file that cannot be imported into this project; nothing was stored."""


def _segmentation_to_rle(seg: Any, height: int, width: int) -> dict[str, Any]:
    if isinstance(seg, list):
        if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
            raise CocoImportError("polygons must be lists of at least 3 (x, y) pairs")
        if not all(isinstance(v, int | float) for p in seg for v in p):
            raise CocoImportError("polygon coordinates must be numbers")
        merged = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        return {"size": [height, width], "counts": merged["counts"].decode("ascii")}
    if isinstance(seg, dict):
        return rlelib.normalise(seg, height, width)
    raise CocoImportError("segmentation must be polygons or an RLE object")


def import_coco(session: Session, project: Project, path: Path) -> int:
    """Import the annotations of a COCO file into `project`; returns how many masks were added.

    Images are matched by file name (or sha256 when the file has one), categories by name.
    Any problem raises CocoImportError and nothing is stored. The caller commits.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CocoImportError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise CocoImportError("a COCO file has 'images', 'annotations' and 'categories' lists")
    ours = {c.name: c for c in session.scalars(select(Category).where(Category.project_id == project.id))}
    cat_map: dict[Any, Category] = {}
    unknown = []
    for c in data["categories"]:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise CocoImportError("every category needs 'id' and 'name'")
        if c["name"] in ours:
            cat_map[c["id"]] = ours[c["name"]]
        else:
            unknown.append(str(c["name"]))
    images = list(session.scalars(select(Image).where(Image.project_id == project.id)))
    by_name = {img.original_name: img for img in images}
    by_sha = {img.sha256: img for img in images}
    img_map: dict[Any, Image] = {}
    missing = []
    for im in data["images"]:
        if not isinstance(im, dict) or "id" not in im:
            raise CocoImportError("every image needs an 'id'")
        found = by_sha.get(im.get("sha256")) or by_name.get(Path(str(im.get("file_name", ""))).name)
        if found is None:
            missing.append(str(im.get("file_name")))
        else:
            img_map[im["id"]] = found
    added = 0
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise CocoImportError(f"annotation {i} is not an object")
        if ann.get("category_id") not in cat_map:
            raise CocoImportError(
                f"annotation {i}: unknown category (project categories: {', '.join(ours)}; "
                f"not in the project: {', '.join(unknown) or 'none'})"
            )
        image = img_map.get(ann.get("image_id"))
        if image is None:
            raise CocoImportError(
                f"annotation {i}: its image is not in the project (missing: {', '.join(missing[:5])})"
            )
        try:
            rle = _segmentation_to_rle(ann.get("segmentation"), image.height, image.width)
        except rlelib.RLEError as exc:
            raise CocoImportError(f"annotation {i}: {exc}") from exc
        area, bbox = rlelib.area_and_bbox(rle)
        if area == 0:
            continue
        session.add(
            Mask(
                image_id=image.id,
                category_id=cat_map[ann["category_id"]].id,
                rle_counts=rle["counts"],
                bbox=bbox,
                area=area,
                status=MaskStatus.accepted.value,
                source="import",
            )
        )
        added += 1
    session.flush()
    return added
