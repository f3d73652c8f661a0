"""`annotator embed` is resumable: a run stopped half-way finishes what is left and nothing twice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select

from annotator_backend import embeddings
from annotator_backend.cli import main
from annotator_backend.db import session_factory
from annotator_backend.models import Embedding
from annotator_backend.sam_factory import build_sam

from .conftest import write_image


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ANNOTATOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SECRET_KEY", "x")
    folder = tmp_path / "imgs"
    for i, (w, h) in enumerate([(96, 64), (64, 96), (80, 80)]):
        write_image(folder / f"{i}.png", w, h, seed=i)
    ckpt = tmp_path / "bootstrap_random.pth"
    torch.manual_seed(0)
    torch.save(build_sam("bootstrap").state_dict(), ckpt)
    assert main(["project", "create", "p", "--categories", "a"]) == 0
    assert main(["images", "import", "p", str(folder)]) == 0
    assert main(["model", "import", str(ckpt), "--type", "bootstrap", "--activate"]) == 0
    return tmp_path


def _rows(url: str) -> int:
    with session_factory(url)() as s:
        return s.scalar(select(func.count()).select_from(Embedding))


def test_embed_resumes_after_interruption(
    env: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real = embeddings.ensure_embedding
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl+C (or the process was killed) here
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings, "ensure_embedding", flaky)
    assert main(["embed", "p"]) == 130
    assert _rows(sqlite_url) == 1
    monkeypatch.setattr(embeddings, "ensure_embedding", real)
    assert main(["embed", "p"]) == 0
    out = capsys.readouterr()
    assert "2 images of p to embed" in out.out and "img" in out.err
    assert _rows(sqlite_url) == 3
    assert main(["embed", "p"]) == 0
    assert "0 images of p to embed" in capsys.readouterr().out
    files = list((env / "data" / "embeddings").rglob("*"))
    assert sum(f.suffix == ".npy" for f in files) == 3 and not [f for f in files if f.name.startswith(".tmp")]
