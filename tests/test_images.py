"""Image import: formats, limits, decompression bombs, EXIF orientation, duplicates."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from annotator_backend.images import (
    MAX_PIXELS,
    ImageError,
    add_image,
    image_path,
    import_folder,
    open_checked,
)
from annotator_backend.models import Image
from annotator_backend.projects import create_project

from .conftest import write_image


@pytest.fixture
def project(session):  # noqa: ANN001, ANN201
    p = create_project(session, "p", ["a"])
    session.commit()
    return p


def _count(session) -> int:  # noqa: ANN001
    return session.scalar(select(func.count()).select_from(Image))


def test_import_folder_dedupes_and_rejects(session, settings, project, tmp_path: Path) -> None:  # noqa: ANN001
    folder = tmp_path / "in"
    write_image(folder / "a.png", 64, 48)
    write_image(folder / "b.jpg", 48, 64, fmt="JPEG", seed=1)
    (folder / "copy-of-a.png").write_bytes((folder / "a.png").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    report = import_folder(session, settings, project, folder)
    assert sorted(report.added) == ["a.png", "b.jpg"]
    assert report.duplicates == ["copy-of-a.png"]
    assert "not an image" in report.rejected["notes.txt"]
    assert _count(session) == 2
    for image in session.scalars(select(Image)):
        path = image_path(settings, image)
        assert path.is_file() and image.stored_name != image.original_name
        assert settings.data_dir in path.parents


def test_decompression_bomb_is_refused(session, settings, project) -> None:  # noqa: ANN001
    side = int(MAX_PIXELS**0.5) + 100
    buf = io.BytesIO()
    PILImage.new("1", (side, side)).save(buf, format="PNG")  # tiny file, huge image
    with pytest.raises(ImageError, match="decompression bomb"):
        add_image(session, settings, project, buf.getvalue(), "bomb.png")
    session.rollback()
    assert _count(session) == 0
    assert not settings.images_dir.exists() or not any(settings.images_dir.rglob("*.png"))


def test_truncated_image_is_refused() -> None:
    buf = io.BytesIO()
    PILImage.new("RGB", (100, 100), "red").save(buf, format="JPEG")
    with pytest.raises(ImageError):
        open_checked(buf.getvalue()[:200], "cut.jpg")


def test_exif_orientation_is_applied(session, settings, project) -> None:  # noqa: ANN001
    img = PILImage.new("RGB", (80, 40), "blue")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    image = add_image(session, settings, project, buf.getvalue(), "phone.jpg")
    session.commit()
    assert (image.width, image.height) == (40, 80)
    with PILImage.open(image_path(settings, image)) as stored:
        assert stored.size == (40, 80)
