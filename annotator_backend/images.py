"""Reading and importing images: format and size limits, EXIF orientation, dedupe by sha256."""

from __future__ import annotations

import io
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from .config import Settings
from .models import Image, Project
from .storage import atomic_write_bytes

ACCEPTED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 40_000_000  # above this an image is refused, as a possible decompression bomb
MAX_SIDE = 16_384


class ImageError(ValueError):
    """A file that is not an image we accept."""


@dataclass
class ImportReport:
    """What `import_folder` did, file by file."""

    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)


def open_checked(data: bytes, name: str = "image") -> PILImage.Image:
    """Decode image bytes fully, refusing unknown formats and oversized or bomb images."""
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name}: file is larger than {MAX_FILE_BYTES // 2**20} MiB")
    old_limit = PILImage.MAX_IMAGE_PIXELS
    try:
        PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data))
            if img.format not in ACCEPTED_FORMATS:
                raise ImageError(f"{name}: format {img.format} is not accepted")
            if max(img.size) > MAX_SIDE:
                raise ImageError(f"{name}: side longer than {MAX_SIDE} pixels")
            img.load()
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{name}: corrupt image ({exc})") from exc
    finally:
        PILImage.MAX_IMAGE_PIXELS = old_limit
    return img


def load_rgb(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 array [H, W, 3], EXIF orientation applied."""
    img = open_checked(Path(path).read_bytes(), Path(path).name)
    return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def normalised_bytes(data: bytes, name: str) -> tuple[bytes, str, int, int]:
    """Validate an upload; returns (bytes to store, extension, width, height).

    An image whose EXIF orientation is not the identity is stored rotated, as PNG, so every
    later reader (browser, encoder, export) sees the same pixels.
    """
    img = open_checked(data, name)
    ext = ACCEPTED_FORMATS[img.format]
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (0, 1):
        img = ImageOps.exif_transpose(img)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue(), ".png", img.width, img.height
    if img.format not in ("JPEG", "PNG", "WEBP"):  # browsers cannot all show BMP/TIFF
        buf = io.BytesIO()
        img.convert("RGBA" if "A" in img.getbands() else "RGB").save(buf, format="PNG")
        return buf.getvalue(), ".png", img.width, img.height
    return data, ext, img.width, img.height


def image_path(settings: Settings, image: Image) -> Path:
    """Where an image's file lives."""
    return image_file(settings.images_dir, image)


def image_file(images_dir: Path, image: Image) -> Path:
    """Where an image's file lives under an images folder (`Settings.images_dir`)."""
    return Path(images_dir) / image.stored_name[:2] / image.stored_name


def add_image(session: Session, settings: Settings, project: Project, data: bytes, name: str) -> Image | None:
    """Store one image in a project; None when the project already has these bytes."""
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    exists = session.scalars(
        select(Image.id).where(Image.project_id == project.id, Image.sha256 == digest)
    ).first()
    if exists is not None:
        return None
    stored, ext, width, height = normalised_bytes(data, name)
    image = Image(
        project_id=project.id,
        sha256=digest,
        stored_name=f"{uuid.uuid4().hex}{ext}",
        original_name=Path(name).name[:500],
        width=width,
        height=height,
    )
    atomic_write_bytes(image_path(settings, image), stored)
    session.add(image)
    session.flush()
    return image


def import_folder(session: Session, settings: Settings, project: Project, folder: Path) -> ImportReport:
    """Import every image file of a folder (not recursive), committing image by image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    report = ImportReport()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            image = add_image(session, settings, project, path.read_bytes(), path.name)
        except ImageError as exc:
            session.rollback()
            report.rejected[path.name] = str(exc)
            continue
        session.commit()
        (report.added if image else report.duplicates).append(path.name)
    return report
