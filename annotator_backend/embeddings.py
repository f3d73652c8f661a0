"""Image embeddings: official preprocessing, the encoder, files keyed by encoder and image sha256."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from .config import Settings
from .images import image_path, load_rgb
from .model_registry import load_model
from .models import Embedding, Image, ModelVersion, Project
from .storage import atomic_write_bytes

EMBEDDING_SHAPE = (1, 256, 64, 64)
_embed_lock = threading.Lock()


def preprocess(model: Sam, rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> normalised, padded [1, 3, 1024, 1024], as `SamPredictor.set_image`."""
    resized = ResizeLongestSide(model.image_encoder.img_size).apply_image(rgb)
    tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
    return model.preprocess(tensor)


@torch.inference_mode()
def embed_rgb(model: Sam, rgb: np.ndarray) -> np.ndarray:
    """The image embedding, float32 [1, 256, 64, 64]."""
    out = model.image_encoder(preprocess(model, rgb))
    return out.float().numpy()


def embed_file(model: Sam, path: Path) -> np.ndarray:
    """Embed one image file."""
    return embed_rgb(model, load_rgb(path))


def embedding_file(settings: Settings, version: ModelVersion, sha256: str) -> Path:
    """File of an image's embedding; versions that share an encoder share the file."""
    key = (version.encoder_sha256 or version.checkpoint_sha256)[:16]
    return settings.embeddings_dir / key / sha256[:2] / f"{sha256}.npy"


def save_embedding(path: Path, embedding: np.ndarray) -> None:
    """Write an embedding as .npy (atomic)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(embedding, dtype=np.float32).reshape(EMBEDDING_SHAPE))
    atomic_write_bytes(path, buf.getvalue())


def load_embedding(path: Path) -> np.ndarray:
    """Read an embedding file, float32 [1, 256, 64, 64]."""
    arr = np.load(path, allow_pickle=False)
    if arr.shape != EMBEDDING_SHAPE:
        raise ValueError(f"{path}: embedding of shape {arr.shape}, expected {EMBEDDING_SHAPE}")
    return arr.astype(np.float32, copy=False)


def find_embedding(session: Session, image: Image, version: ModelVersion) -> Embedding | None:
    """The stored embedding row of an image for a version, if any."""
    return session.scalars(
        select(Embedding).where(Embedding.image_id == image.id, Embedding.model_version_id == version.id)
    ).first()


def ensure_embedding(session: Session, settings: Settings, image: Image, version: ModelVersion) -> Embedding:
    """Return the image's embedding for `version`, computing and storing it when missing."""
    row = find_embedding(session, image, version)
    if row is not None and Path(row.path).exists():
        return row
    with _embed_lock:
        path = embedding_file(settings, version, image.sha256)
        seconds = 0.0
        if not path.exists():
            start = time.perf_counter()
            save_embedding(path, embed_file(load_model(version), image_path(settings, image)))
            seconds = time.perf_counter() - start
        if row is None:
            row = Embedding(image_id=image.id, model_version_id=version.id, path=str(path), seconds=seconds)
            session.add(row)
        else:
            row.path = str(path)
        session.commit()
    return row


def missing_images(session: Session, project: Project, version: ModelVersion) -> list[Image]:
    """Images of a project without an embedding row for `version`."""
    done = select(Embedding.image_id).where(Embedding.model_version_id == version.id)
    return list(
        session.scalars(
            select(Image).where(Image.project_id == project.id, Image.id.not_in(done)).order_by(Image.id)
        )
    )


def embed_images(
    session: Session,
    settings: Settings,
    images: Iterable[Image],
    version: ModelVersion,
    progress: bool = True,
) -> int:
    """Embed images one by one, committing each, so a killed run resumes where it stopped."""
    images = list(images)
    count = 0
    bar = tqdm(images, unit="img", desc=f"embed ({version.name})", disable=not progress, dynamic_ncols=True)
    for image in bar:
        ensure_embedding(session, settings, image, version)
        count += 1
    bar.close()
    return count
