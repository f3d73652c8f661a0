"""A small world for integration tests: users, a project, an image, a model and its embedding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from annotator_backend.accounts import add_user
from annotator_backend.config import Settings
from annotator_backend.embeddings import embedding_file, save_embedding
from annotator_backend.images import add_image
from annotator_backend.models import Embedding, Image, ModelVersion, Project
from annotator_backend.projects import add_member, create_project

from .conftest import write_image

PASSWORD = "correct horse"


@dataclass
class World:
    project: Project
    image: Image
    version: ModelVersion
    category_ids: list[int]


def build_world(
    session: Session, settings: Settings, tmp_path: Path, width: int = 64, height: int = 48
) -> World:
    member = add_user(session, "ann", "annotator", PASSWORD)
    add_user(session, "outsider", "annotator", PASSWORD)
    add_user(session, "boss", "manager", PASSWORD)
    project = create_project(session, "proj", ["cat", "dog"])
    add_member(session, project, member)
    img_file = write_image(tmp_path / "img.png", width, height)
    image = add_image(session, settings, project, img_file.read_bytes(), "img.png")
    onnx = settings.models_dir / "fake" / "decoder.onnx"
    onnx.parent.mkdir(parents=True, exist_ok=True)
    onnx.write_bytes(fake_decoder_bytes())
    version = ModelVersion(
        name="test model",
        kind="sam",
        arch="vit_b",
        checkpoint_path=str(onnx.parent / "checkpoint.pth"),
        checkpoint_sha256="0" * 64,
        encoder_sha256="e" * 64,
        onnx_path=str(onnx),
        trained=False,
        is_active=True,
    )
    session.add(version)
    session.flush()
    path = embedding_file(settings, version, image.sha256)
    save_embedding(path, np.arange(256 * 64 * 64, dtype=np.float32).reshape(1, 256, 64, 64))
    session.add(Embedding(image_id=image.id, model_version_id=version.id, path=str(path)))
    session.commit()
    return World(project, image, version, [c.id for c in project.categories])


def fake_decoder_bytes() -> bytes:
    """A tiny valid ONNX file that carries the current graph version, so it is served as is."""
    import onnx as onnxlib

    from annotator_backend.onnx_export import GRAPH_VERSION

    model = onnxlib.helper.make_model(onnxlib.helper.make_graph([], "fake-decoder", [], []))
    onnxlib.helper.set_model_props(model, {"graph": GRAPH_VERSION})
    return model.SerializeToString()
