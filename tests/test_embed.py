"""`annotator embed` is resumable (a run stopped half-way finishes what is left and nothing twice);
embedding files are float16 and keep the masks; float32 files of older versions still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import func, select

from annotator_backend import embeddings
from annotator_backend.cli import main
from annotator_backend.db import session_factory
from annotator_backend.decoding import OnnxDecoder, Prompt, mask_from_logits
from annotator_backend.models import Embedding
from annotator_backend.onnx_export import export_decoder
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
    real = embeddings.save_embedding
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl+C (or the process was killed) here
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings, "save_embedding", flaky)
    assert main(["embed", "p"]) == 130
    assert _rows(sqlite_url) == 1
    monkeypatch.setattr(embeddings, "save_embedding", real)
    assert main(["embed", "p"]) == 0
    out = capsys.readouterr()
    assert "2 images of p to embed" in out.out and "img" in out.err
    assert _rows(sqlite_url) == 3
    assert main(["embed", "p"]) == 0
    assert "0 images of p to embed" in capsys.readouterr().out
    files = list((env / "data" / "embeddings").rglob("*"))
    assert sum(f.suffix == ".npy" for f in files) == 3 and not [f for f in files if f.name.startswith(".tmp")]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_float16_files_keep_the_masks(tmp_path: Path) -> None:
    """Stored embeddings are float16 (2 MiB) and decode to the float32 embedding's masks."""
    torch.manual_seed(0)
    model = build_sam("bootstrap")
    image = write_image(tmp_path / "img.png", 160, 120, seed=3)
    emb32 = embeddings.embed_file(model, image, precision="fp32")  # bf16 values would be exact in fp16
    path = tmp_path / "emb.npy"
    embeddings.save_embedding(path, emb32)
    assert embeddings.read_embedding(path).dtype == np.float16
    assert path.stat().st_size < 2 * 256 * 64 * 64 + 256
    emb16 = embeddings.load_embedding(path)
    assert emb16.dtype == np.float32 and emb16.shape == embeddings.EMBEDDING_SHAPE

    dec = OnnxDecoder(export_decoder(model, tmp_path / "decoder.onnx"))
    prompts = [
        [Prompt([(80, 60)], [1])],
        [Prompt([(40, 30)], [1])],
        [Prompt([(80, 60)], [1]), Prompt([(80, 60), (20, 100)], [1, 0])],
        [Prompt([], [], box=(40, 30, 120, 90))],
    ]
    for steps in prompts:
        masks = []
        for emb in (emb32, emb16):
            prev = None
            for p in steps:
                prev = dec.predict(emb, p, 160, 120, prev)[0]
            masks.append(mask_from_logits(prev, 160, 120))
        assert _iou(*masks) >= 0.99, steps


def test_float32_files_still_load(tmp_path: Path) -> None:
    """Files of older versions (float32 .npy) load unchanged; values too wide for float16 stay float32."""
    old = np.random.default_rng(0).standard_normal(embeddings.EMBEDDING_SHAPE).astype(np.float32)
    path = tmp_path / "old.npy"
    np.save(path, old)
    assert np.array_equal(embeddings.load_embedding(path), old)
    assert embeddings.read_embedding(path).dtype == np.float32
    wide = np.arange(256 * 64 * 64, dtype=np.float32).reshape(embeddings.EMBEDDING_SHAPE)
    embeddings.save_embedding(tmp_path / "wide.npy", wide)
    assert np.array_equal(embeddings.load_embedding(tmp_path / "wide.npy"), wide)
    np.save(tmp_path / "bad.npy", old.astype(np.float64))
    with pytest.raises(ValueError, match="dtype"):
        embeddings.load_embedding(tmp_path / "bad.npy")
