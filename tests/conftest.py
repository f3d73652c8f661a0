"""Shared fixtures: databases made by `alembic upgrade head` (SQLite and PostgreSQL), settings,
and one random-weight vit_b checkpoint in the official format for the whole session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from sqlalchemy import create_engine, text

from annotator_backend.config import REPO_ROOT, Settings
from annotator_backend.db import session_factory, upgrade

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def _pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    name = f"annot_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        session_factory(url).kw["bind"].dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
        upgrade(url)
        yield url
        session_factory(url).kw["bind"].dispose()
    else:
        gen = _pg_database()
        url = next(gen)
        upgrade(url)
        yield url
        gen.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
    upgrade(url)
    yield url
    session_factory(url).kw["bind"].dispose()


def make_settings(db: str, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=db, redis_url=None, secret_key="test-secret", port=0)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data")


@pytest.fixture
def session(settings: Settings):  # noqa: ANN201
    s = session_factory(settings.database_url)()
    yield s
    s.close()


@pytest.fixture(scope="session")
def vit_b_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight vit_b checkpoint, byte-for-byte the official format (a plain state dict)."""
    from segment_anything import sam_model_registry

    path = tmp_path_factory.mktemp("ckpt") / "sam_vit_b_random.pth"
    torch.manual_seed(1234)
    torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def vit_b_model(vit_b_checkpoint: Path):  # noqa: ANN201
    from annotator_backend.sam_factory import load_sam

    return load_sam(vit_b_checkpoint, "vit_b")


def write_image(path: Path, width: int, height: int, fmt: str = "PNG", seed: int = 0) -> Path:
    """A small synthetic picture: a bright rectangle on a textured background."""
    rng = np.random.default_rng(seed)
    arr = (rng.random((height, width, 3)) * 60).astype(np.uint8)
    arr[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = [230, 200, 40]
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(arr).save(path, format=fmt)
    return path
