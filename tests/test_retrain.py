"""Retraining rounds: data selection, the held-out split, run_round, a killed round, promote,
discard, serving_version and the CLI (a round as a Celery job: tests/test_rounds_pages.py).
Models are random-weight bootstrap models on tiny images, trained for a couple of steps."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator_backend import rle as rlelib
from annotator_backend.cli import main
from annotator_backend.config import Settings
from annotator_backend.db import session_factory
from annotator_backend.images import add_image
from annotator_backend.model_registry import import_checkpoint
from annotator_backend.models import Embedding, Image, Job, Mask, ModelVersion, Project
from annotator_backend.projects import create_project
from annotator_backend.retrain import (
    RetrainError,
    RoundConfig,
    discard,
    ensure_embed_job,
    promote,
    run_round,
    serving_version,
)
from annotator_backend.round_data import is_held_out, project_masks
from annotator_backend.sam_factory import build_sam

from .conftest import make_settings, write_image

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# What keeps a test round cheap: one image per step, two clicks, no refinement pass, 5 eval clicks.
FAST = {
    "flip": False,
    "eval_max_clicks": 5,
    "train_options": {"batch_images": 1, "ema": 0.0, "session": {"clicks": 2, "refine": 0, "grad_passes": 1}},
}


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201
    """One torch thread: faster than two on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def bootstrap_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("boot") / "bootstrap_random.pth"
    torch.manual_seed(7)
    torch.save(build_sam("bootstrap").state_dict(), path)
    return path


@dataclass
class RoundWorld:
    project: Project
    base: ModelVersion
    train_images: list[Image]
    held_images: list[Image]


def _rect(h: int, w: int, seed: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = True  # write_image's bright rectangle
    if seed % 2:
        m[: h // 8] = False
    return m


def add_mask(
    session: Session, image: Image, mask: np.ndarray, status: str = "accepted", source: str = "annotator"
) -> Mask:
    rle = rlelib.encode(mask)
    area, bbox = rlelib.area_and_bbox(rle)
    row = Mask(
        image_id=image.id, rle_counts=rle["counts"], bbox=bbox, area=area, status=status, source=source
    )
    session.add(row)
    session.flush()
    return row


def add_images(
    session: Session, settings: Settings, project: Project, tmp: Path, n_train: int, n_held: int
) -> tuple[list[Image], list[Image]]:
    """Images until the content-hash split gives n_train training and n_held held-out ones."""
    train, held = [], []
    for seed in range(200):
        if len(train) >= n_train and len(held) >= n_held:
            break
        data = write_image(tmp / f"img{seed}.png", 64, 48, seed=seed).read_bytes()
        image = add_image(session, settings, project, data, f"img{seed}.png")
        bucket = held if is_held_out(image.sha256) else train
        if len(bucket) >= (n_held if bucket is held else n_train):
            session.delete(image)
            continue
        add_mask(session, image, _rect(48, 64, seed))
        bucket.append(image)
    session.commit()
    return train, held


def round_world(session: Session, settings: Settings, ckpt: Path, tmp: Path, n_train: int = 2) -> RoundWorld:
    base = import_checkpoint(
        session, settings, ckpt, "bootstrap", name="boot", kind="bootstrap", activate=True
    )
    project = create_project(session, "roundproj", ["thing"])
    session.commit()
    train, held = add_images(session, settings, project, tmp, n_train, 1)
    return RoundWorld(project, base, train, held)


def test_held_out_split_is_fixed_and_about_a_fifth() -> None:
    rng = np.random.default_rng(0)
    hashes = ["".join(rng.choice(list("0123456789abcdef"), 64)) for _ in range(2000)]
    share = sum(map(is_held_out, hashes)) / len(hashes)
    assert 0.17 < share < 0.23
    assert [is_held_out(h) for h in hashes[:50]] == [is_held_out(h) for h in hashes[:50]]
    assert is_held_out("00000000" + "f" * 56) and not is_held_out("00000001" + "f" * 56)


def test_round_config_is_validated() -> None:
    for bad in (
        {"mode": "everything"},
        {"sources": ("rejected",)},
        {"sources": ()},
        {"minutes": None, "steps": None},
        {"minutes": -1.0},
        {"steps": 0, "minutes": None},
        {"eval_limit": 0},
    ):
        with pytest.raises(RetrainError):
            RoundConfig(project_id=1, **bad)
    with pytest.raises(RetrainError, match="unknown round settings"):
        RoundConfig.from_params({"project_id": 1, "epochs": 3})
    cfg = RoundConfig(project_id=1, steps=5, minutes=None, sources=("import",))
    assert RoundConfig.from_params(json.loads(json.dumps(cfg.to_params()))) == cfg


def test_mask_selection_and_split(session: Session, settings: Settings, tmp_path: Path) -> None:  # noqa: ANN001
    project = create_project(session, "p", ["a"])
    session.commit()
    train, held = add_images(session, settings, project, tmp_path, 1, 1)
    m = _rect(48, 64, 0)
    add_mask(session, train[0], m, status="verified")
    add_mask(session, train[0], m, source="import")
    add_mask(session, train[0], m, status="rejected")
    add_mask(session, train[0], m, status="deleted", source="import")
    session.commit()

    def count(sources: tuple[str, ...], held_out: bool = False) -> int:
        return sum(len(v) for v in project_masks(session, project.id, sources, held_out).values())

    assert count(("accepted",)) == 1 and count(("verified",)) == 1 and count(("import",)) == 1
    assert count(("accepted", "verified", "import")) == 3
    assert count(("accepted",), held_out=True) == 1
    assert set(project_masks(session, project.id, ("accepted",), True)) == {held[0]}


def _version(session: Session, name: str, encoder: str, active: bool = False) -> ModelVersion:
    v = ModelVersion(
        name=name,
        kind="retrained",
        arch="bootstrap",
        checkpoint_path=f"/nonexistent/{name}.pth",
        checkpoint_sha256=name.ljust(64, "0"),
        encoder_sha256=encoder,
        is_active=active,
    )
    session.add(v)
    session.flush()
    return v


def test_serving_version_keeps_embedding_and_decoder_together(
    session: Session, settings: Settings, tmp_path: Path
) -> None:
    project = create_project(session, "p", ["a"])
    data = write_image(tmp_path / "a.png", 32, 24).read_bytes()
    image = add_image(session, settings, project, data, "a.png")
    old = _version(session, "old", "e1")
    new = _version(session, "new", "e2", active=True)
    assert serving_version(session, image, new).id == new.id  # nothing embedded: compute the active one
    session.add(Embedding(image_id=image.id, model_version_id=old.id, path="/x/old.npy"))
    session.commit()
    assert serving_version(session, image, new).id == old.id  # until the new embedding exists
    decoder_only = _version(session, "child", "e1")
    assert serving_version(session, image, decoder_only).id == decoder_only.id  # same encoder: same file
    discard(session, old.id)
    assert serving_version(session, image, new).id == new.id  # a discarded version never serves
    session.add(Embedding(image_id=image.id, model_version_id=new.id, path="/x/new.npy"))
    session.commit()
    assert serving_version(session, image, new).id == new.id
    with pytest.raises(RetrainError, match="cannot be discarded"):
        discard(session, new.id)
    with pytest.raises(RetrainError, match="never be active"):
        promote(session, settings, old.id)
    # a pending embedding job is reused, not duplicated
    job = Job(
        kind="embed", params={"project_id": project.id, "model_version_id": new.id}, project_id=project.id
    )
    session.add(job)
    session.commit()
    assert ensure_embed_job(session, settings, project.id, new.id) == job.id


def _models_dir_files(settings: Settings) -> set[Path]:
    return {p for p in settings.models_dir.rglob("*")}


def test_round_registers_child_then_promote(sqlite_url: str, tmp_path: Path, bootstrap_ckpt: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path / "data")
    with session_factory(sqlite_url)() as s:
        world = round_world(s, settings, bootstrap_ckpt, tmp_path)
        seen: list[dict] = []
        cfg = RoundConfig(project_id=world.project.id, minutes=None, steps=2, name="child", **FAST)
        report = run_round(s, settings, cfg, progress=seen.append)
        child = s.get(ModelVersion, report["version_id"])
        assert child.parent_id == world.base.id and child.kind == "retrained" and not child.is_active
        assert Path(child.checkpoint_path).is_file() and Path(child.onnx_path).is_file()
        assert child.encoder_sha256 == world.base.encoder_sha256  # decoder mode: encoder frozen
        assert child.checkpoint_sha256 != world.base.checkpoint_sha256
        for key in ("heldout", "parent_heldout"):
            assert child.metrics[key]["objects"] == 1 and 1 <= child.metrics[key]["NoC@90"] <= 5
        assert report["data"] == {
            "train_images": 2,
            "train_masks": 2,
            "heldout_images": 1,
            "heldout_masks": 1,
            "sources": ["accepted", "verified", "import"],
        }
        assert child.info["round"]["steps"] == 2 and len(child.info["curve"]) == 2
        phases = [p["phase"] for p in seen]
        assert phases[0] == "preparing" and phases[-1] == "registering" and "evaluating" in phases
        assert [p["step"] for p in seen if p["phase"] == "training"] == [1, 2]

        outcome = promote(s, settings, child.id)
        assert outcome == {"active": child.id, "previous": world.base.id, "embed_jobs": []}  # same encoder
        s.expire_all()
        assert s.get(ModelVersion, child.id).is_active and not s.get(ModelVersion, world.base.id).is_active
        # an image embedded with the parent is served by the child at once: same encoder, same file
        image = world.train_images[0]
        s.add(Embedding(image_id=image.id, model_version_id=world.base.id, path="/x/e.npy"))
        s.commit()
        assert serving_version(s, image, s.get(ModelVersion, child.id)).id == child.id


def test_killed_round_registers_nothing(sqlite_url: str, tmp_path: Path, bootstrap_ckpt: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path / "data")
    with session_factory(sqlite_url)() as s:
        world = round_world(s, settings, bootstrap_ckpt, tmp_path)
        before = _models_dir_files(settings)

        def die(p: dict) -> None:
            if p.get("step") == 1:
                raise KeyboardInterrupt  # what Ctrl-C or a cancelled job does mid-training

        cfg = RoundConfig(project_id=world.project.id, minutes=None, steps=3, **FAST)
        with pytest.raises(KeyboardInterrupt):
            run_round(s, settings, cfg, progress=die)
        s.rollback()
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 1
        assert _models_dir_files(settings) == before
        # a round with nothing to evaluate is refused before any training
        with pytest.raises(RetrainError, match="no masks to train on"):
            run_round(s, settings, RoundConfig(project_id=world.project.id, sources=("verified",), steps=1))


def test_cli_retrain_promote_evaluate(
    sqlite_url: str, tmp_path: Path, bootstrap_ckpt: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    settings = make_settings(sqlite_url, tmp_path / "data")
    with session_factory(sqlite_url)() as s:
        world = round_world(s, settings, bootstrap_ckpt, tmp_path)
        base_id = world.base.id
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ANNOTATOR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.delenv("REDIS_URL", raising=False)

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    with pytest.raises(SystemExit):
        main(["retrain", "roundproj", "--steps", "1", "--minutes", "2"])  # one budget or the other
    assert cli("retrain", "roundproj", "--steps", "1", "--options", "[1]")[0] == 2
    code, _, err = cli("retrain", "roundproj", "--steps", "1", "--options", '{"epochs": 2}')
    assert code == 2 and "unknown round settings: epochs" in err
    fast = json.dumps(FAST)
    code, out, err = cli(
        "retrain",
        "roundproj",
        "--steps",
        "1",
        "--mode",
        "full",
        "--eval-limit",
        "1",
        "--promote",
        "--options",
        fast,
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["parent_id"] == base_id and report["train"]["steps"] == 1
    assert set(report["child"]) >= {"NoC@85", "NoC@90", "mIoU@1", "mIoU@3", "mIoU@5"}
    assert "[evaluating]" in err and "step 1/1" in err
    # full mode changed the encoder: promotion re-embedded the project (waited for: no Redis here)
    assert len(report["promoted"]["embed_jobs"]) == 1
    child_id = report["version_id"]
    with session_factory(sqlite_url)() as s:
        child = s.get(ModelVersion, child_id)
        assert child.is_active and child.encoder_sha256 != world.base.encoder_sha256
        where = Embedding.model_version_id == child_id
        assert s.scalar(select(func.count()).select_from(Embedding).where(where)) == 3
        assert s.get(Job, report["promoted"]["embed_jobs"][0]).status == "succeeded"
    assert cli("model", "discard", str(child_id))[0] == 2  # the active one
    code, out, _ = cli("model", "promote", str(base_id))
    assert code == 0 and f"model version {base_id} is active" in out
    assert cli("model", "discard", str(child_id))[0] == 0
    code, _, err = cli("model", "promote", str(child_id))
    assert code == 2 and "discarded" in err
    code, _, err = cli("retrain", "roundproj", "--base", str(child_id), "--steps", "1")
    assert code == 2 and "discarded" in err
    # evaluate: a checkpoint path, and a version id, on a folder in the shared layout
    ds = tmp_path / "ds"
    write_image(ds / "images" / "a.png", 64, 48)
    (ds / "masks").mkdir()
    PILImage.fromarray(_rect(48, 64, 0).astype(np.uint8) * 255).save(ds / "masks" / "a_0.png")
    for args in ([str(bootstrap_ckpt), "--type", "bootstrap"], [str(base_id)]):
        code, out, err = cli("evaluate", *args, str(ds), "--limit", "1")
        assert code == 0, err
        assert json.loads(out)["summary"]["objects"] == 1
    assert cli("evaluate", str(tmp_path / "missing.pth"), str(ds))[0] == 2
