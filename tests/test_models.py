"""Importing checkpoints through the CLI, refusing bad ones, and the official preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from sqlalchemy import func, select

from annotator_backend.cli import main
from annotator_backend.db import session_factory
from annotator_backend.images import load_rgb
from annotator_backend.models import ModelVersion

from .conftest import write_image


@pytest.fixture
def cli_env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ANNOTATOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SECRET_KEY", "x")
    return sqlite_url


def _versions(url: str) -> int:
    with session_factory(url)() as s:
        return s.scalar(select(func.count()).select_from(ModelVersion))


def _data_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "data" / "models"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_import_official_checkpoint_then_embed_and_export(
    cli_env: str,
    vit_b_checkpoint: Path,
    vit_b_model,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,  # noqa: ANN001
) -> None:
    assert main(["model", "import", str(vit_b_checkpoint), "--type", "vit_b", "--activate"]) == 0
    assert _versions(cli_env) == 1
    with session_factory(cli_env)() as s:
        v = s.scalars(select(ModelVersion)).one()
        assert v.is_active and v.arch == "vit_b" and Path(v.checkpoint_path).is_relative_to(tmp_path / "data")
        assert Path(v.onnx_path).exists()
    image = write_image(tmp_path / "portrait.png", 120, 200)
    out = tmp_path / "emb.npy"
    assert main(["embed-file", str(image), "--out", str(out)]) == 0
    emb = np.load(out)
    assert emb.shape == (1, 256, 64, 64) and emb.dtype == np.float32

    # The embedding is the official one: SamPredictor.set_image on the same weights.
    predictor = SamPredictor(vit_b_model)
    predictor.set_image(load_rgb(image))
    ref = predictor.get_image_embedding().numpy()
    cos = float((emb * ref).sum() / (np.linalg.norm(emb) * np.linalg.norm(ref)))
    assert cos >= 0.999

    onnx_out = tmp_path / "dec.onnx"
    assert main(["model", "export-onnx", "--out", str(onnx_out)]) == 0
    assert onnx_out.stat().st_size > 1_000_000
    assert main(["model", "list"]) == 0
    assert "*active*" in capsys.readouterr().out


def test_wrong_type_is_refused_and_registers_nothing(
    cli_env: str, vit_b_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["model", "import", str(vit_b_checkpoint), "--type", "vit_l"]) == 2
    err = capsys.readouterr().err
    assert "vit_b checkpoint, not vit_l" in err
    assert _versions(cli_env) == 0 and _data_files(tmp_path) == []


@pytest.mark.parametrize(
    "content",
    [b"not a checkpoint at all", b"PK\x03\x04 truncated zip", None],
    ids=["garbage", "truncated", "not-a-state-dict"],
)
def test_corrupt_checkpoint_is_refused(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes | None
) -> None:
    path = tmp_path / "bad.pth"
    if content is None:
        torch.save({"epoch": 3, "note": "a training log, not weights"}, path)
    else:
        path.write_bytes(content)
    assert main(["model", "import", str(path), "--type", "vit_b"]) == 2
    assert "error:" in capsys.readouterr().err
    assert _versions(cli_env) == 0 and _data_files(tmp_path) == []


def test_missing_checkpoint_file(cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["model", "import", str(tmp_path / "nope.pth"), "--type", "vit_h"]) == 2
    assert "no such file" in capsys.readouterr().err
