"""COCO export (RLE lossless, polygons), event JSON Lines, and all-or-nothing import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from sqlalchemy import func, select

from annotator_backend import rle
from annotator_backend.coco_export import export_project
from annotator_backend.coco_import import CocoImportError, import_coco
from annotator_backend.models import Mask

from .fixtures_world import build_world


@pytest.fixture
def world(session, settings, tmp_path: Path):  # noqa: ANN001, ANN201
    return build_world(session, settings, tmp_path)


def _holey_mask() -> np.ndarray:
    m = np.zeros((48, 64), bool)
    m[5:40, 5:50] = True
    m[15:25, 15:25] = False  # hole
    m[42:46, 55:60] = True  # detached part
    return m


def _add(session, world, m: np.ndarray, status: str = "accepted") -> Mask:  # noqa: ANN001
    enc = rle.encode(m)
    area, bbox = rle.area_and_bbox(enc)
    mask = Mask(
        image_id=world.image.id,
        category_id=world.category_ids[0],
        rle_counts=enc["counts"],
        bbox=bbox,
        area=area,
        status=status,
        active_ms=1500,
        clicks=2,
    )
    session.add(mask)
    session.commit()
    return mask


def test_rle_export_is_lossless_and_loads_in_pycocotools(session, world, tmp_path: Path) -> None:  # noqa: ANN001
    m = _holey_mask()
    _add(session, world, m)
    _add(session, world, ~m, status="rejected")
    out = tmp_path / "coco.json"
    events = tmp_path / "events.jsonl"
    assert export_project(session, world.project, out, events_out=events) == 1
    coco = COCO(str(out))
    (ann,) = coco.loadAnns(coco.getAnnIds())
    assert ann["iscrowd"] == 0 and ann["area"] == int(m.sum())
    assert np.array_equal(coco.annToMask(ann).astype(bool), m)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat", "dog"]
    line = json.loads(events.read_text().splitlines()[0])
    assert line["active_seconds"] == 1.5 and line["clicks"] == 2
    assert export_project(session, world.project, out, status="all") == 2


def test_polygon_export_says_what_it_loses(session, world, tmp_path: Path) -> None:  # noqa: ANN001
    m = _holey_mask()
    _add(session, world, m)
    out = tmp_path / "poly.json"
    export_project(session, world.project, out, fmt="polygon")
    data = json.loads(out.read_text())
    assert "holes are filled" in data["info"]["note"]
    coco = COCO(str(out))
    (ann,) = coco.loadAnns(coco.getAnnIds())
    got = coco.annToMask(ann).astype(bool)
    filled = m.copy()
    filled[15:25, 15:25] = True
    inter, union = (got & filled).sum(), (got | filled).sum()
    assert inter / union > 0.9


def test_import_polygons_and_rle_as_prelabels(session, world, tmp_path: Path) -> None:  # noqa: ANN001
    m = _holey_mask()
    data = {
        "images": [{"id": 7, "file_name": "some/dir/img.png", "width": 64, "height": 48}],
        "categories": [{"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]]},
            {
                "id": 2,
                "image_id": 7,
                "category_id": 3,
                "segmentation": {
                    k: (v.decode() if isinstance(v, bytes) else v)
                    for k, v in mask_utils.encode(np.asfortranarray(m.astype(np.uint8))).items()
                },
            },
        ],
    }
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data))
    assert import_coco(session, world.project, path) == 2
    session.commit()
    masks = session.scalars(select(Mask).order_by(Mask.id)).all()
    assert {mk.source for mk in masks} == {"import"}
    assert np.array_equal(rle.decode({"size": [48, 64], "counts": masks[1].rle_counts}), m)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["categories"].__setitem__(0, {"id": 3, "name": "unicorn"}), "unknown category"),
        (lambda d: d["images"][0].__setitem__("file_name", "other.png"), "not in the project"),
        (
            lambda d: d["annotations"][1].__setitem__("segmentation", {"size": [4, 4], "counts": [16]}),
            "does not fit",
        ),
        (lambda d: d.pop("annotations"), "'images', 'annotations' and 'categories'"),
        (lambda d: d["annotations"][0].__setitem__("segmentation", [[1, 2]]), "polygons"),
    ],
    ids=["category", "image", "rle-size", "malformed", "polygon"],
)
def test_bad_coco_imports_nothing(session, world, tmp_path: Path, change, message: str) -> None:  # noqa: ANN001
    data = {
        "images": [{"id": 7, "file_name": "img.png"}],
        "categories": [{"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]]},
            {"id": 2, "image_id": 7, "category_id": 3, "segmentation": [[1, 1, 9, 1, 9, 9]]},
        ],
    }
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CocoImportError, match=message):
        import_coco(session, world.project, path)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Mask)) == 0
