"""What a retraining round trains and evaluates on: a project's stored masks, split in two.

Every project has a fixed held-out split, a fifth of its images chosen by content hash, so the
split never moves as images are added. The admin picks which masks count (`SOURCES`).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from . import rle as rlelib
from .config import Settings
from .images import image_path
from .models import Image, Mask, MaskStatus

SOURCES = ("accepted", "verified", "import")


def is_held_out(sha256: str) -> bool:
    """The fixed held-out split: images whose content hash falls in one fifth of the space."""
    return int(sha256[:8], 16) % 5 == 0


def _mask_filter(sources: tuple[str, ...]):  # noqa: ANN202
    kept = [MaskStatus.accepted.value, MaskStatus.verified.value]
    conds = []
    if "accepted" in sources:
        conds.append((Mask.status == MaskStatus.accepted.value) & (Mask.source != "import"))
    if "verified" in sources:
        conds.append((Mask.status == MaskStatus.verified.value) & (Mask.source != "import"))
    if "import" in sources:
        conds.append((Mask.source == "import") & Mask.status.in_(kept))
    return or_(*conds)


def project_masks(
    session: Session, project_id: int, sources: tuple[str, ...], held_out: bool
) -> dict[Image, list[Mask]]:
    """Masks of the project's training split (or held-out split), grouped by image."""
    rows = session.execute(
        select(Image, Mask)
        .join(Mask, Mask.image_id == Image.id)
        .where(Image.project_id == project_id, _mask_filter(tuple(sources)))
        .order_by(Image.id, Mask.id)
    )
    grouped: dict[Image, list[Mask]] = defaultdict(list)
    for image, mask in rows:
        if is_held_out(image.sha256) == held_out:
            grouped[image].append(mask)
    return dict(grouped)


def _decode(image: Image, mask: Mask):  # noqa: ANN202
    return rlelib.decode({"size": [image.height, image.width], "counts": mask.rle_counts})


def training_samples(settings: Settings, grouped: dict[Image, list[Mask]]) -> list:
    """`training.Sample`s (image path, decoded masks) of grouped masks."""
    from .training import Sample

    return [
        Sample(image_path(settings, img), [_decode(img, m) for m in masks]) for img, masks in grouped.items()
    ]


def held_out_objects(settings: Settings, grouped: dict[Image, list[Mask]], limit: int | None) -> list[tuple]:
    """(name, image path, gt mask, ignore) of the held-out masks, grouped by image."""
    objects = [
        (f"mask{m.id}", image_path(settings, img), _decode(img, m), None)
        for img, masks in grouped.items()
        for m in masks
    ]
    return objects[:limit] if limit else objects
