"""Image embeddings: official preprocessing, the encoder, files keyed by encoder and image sha256.

Files are .npy, float16 since issue 6 (float32 when the values do not fit); float32 files of
older versions still load. Readers get float32.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from .config import Settings
from .fast_encoder import encode
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
def embed_rgb(model: Sam, rgb: np.ndarray, precision: str = "auto") -> np.ndarray:
    """The image embedding, float32 [1, 256, 64, 64]; the encoder runs in bf16 where that is
    native (`precision` "auto", see fast_encoder), else fp32."""
    return encode(model.image_encoder, preprocess(model, rgb), precision).numpy()


def embed_file(model: Sam, path: Path, precision: str = "auto") -> np.ndarray:
    """Embed one image file."""
    return embed_rgb(model, load_rgb(path), precision)


def embedding_file(settings: Settings, version: ModelVersion, sha256: str) -> Path:
    """File of an image's embedding; versions that share an encoder share the file."""
    key = (version.encoder_sha256 or version.checkpoint_sha256)[:16]
    return settings.embeddings_dir / key / sha256[:2] / f"{sha256}.npy"


def storage_dtype(embedding: np.ndarray) -> np.dtype:
    """float16 (half the bytes; relative error <= 2**-11) unless a value is outside its range."""
    peak = float(np.abs(embedding).max()) if embedding.size else 0.0
    return np.dtype(np.float16) if peak <= float(np.finfo(np.float16).max) else np.dtype(np.float32)


def save_embedding(path: Path, embedding: np.ndarray) -> None:
    """Write an embedding as .npy (atomic): little-endian float16, or float32 when the values
    do not fit float16 (see `storage_dtype`)."""
    arr = np.asarray(embedding).reshape(EMBEDDING_SHAPE)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=storage_dtype(arr).newbyteorder("<")))
    atomic_write_bytes(path, buf.getvalue())


def read_embedding(path: Path) -> np.ndarray:
    """An embedding file as stored: little-endian float16 or float32 [1, 256, 64, 64]."""
    arr = np.load(path, allow_pickle=False)
    if arr.shape != EMBEDDING_SHAPE:
        raise ValueError(f"{path}: embedding of shape {arr.shape}, expected {EMBEDDING_SHAPE}")
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4):
        raise ValueError(f"{path}: embedding of dtype {arr.dtype}, expected float16 or float32")
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False)


def load_embedding(path: Path) -> np.ndarray:
    """Read an embedding file (float16 or, from older versions, float32) as float32 [1, 256, 64, 64]."""
    return read_embedding(path).astype(np.float32, copy=False)


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
            model = load_model(version)
            save_embedding(path, embed_file(model, image_path(settings, image), settings.encoder_precision))
            seconds = time.perf_counter() - start
        return _record(session, image, version, path, seconds)


def missing_images(session: Session, project: Project, version: ModelVersion) -> list[Image]:
    """Images of a project without an embedding row for `version`."""
    done = select(Embedding.image_id).where(Embedding.model_version_id == version.id)
    return list(
        session.scalars(
            select(Image).where(Image.project_id == project.id, Image.id.not_in(done)).order_by(Image.id)
        )
    )


def _record(session: Session, image: Image, version: ModelVersion, path: Path, seconds: float) -> Embedding:
    """Add or repoint the embedding row of an image whose file exists, and commit."""
    row = find_embedding(session, image, version)
    if row is None:
        row = Embedding(image_id=image.id, model_version_id=version.id, path=str(path), seconds=seconds)
        session.add(row)
    else:
        row.path = str(path)
    session.commit()
    return row


def embed_images(
    session: Session,
    settings: Settings,
    images: Iterable[Image],
    version: ModelVersion,
    progress: bool = True,
) -> int:
    """Embed images, committing each as soon as its file is written, so a killed run resumes
    where it stopped. Reading and resizing image N+1 and writing embedding N-1 run in I/O
    threads while the encoder works on image N."""
    images = list(images)
    bar = tqdm(total=len(images), unit="img", desc=f"embed ({version.name})", disable=not progress)

    def read(image: Image) -> torch.Tensor | None:
        if embedding_file(settings, version, image.sha256).exists():
            return None  # shared with another version of the same encoder, or left by a killed run
        return preprocess(model, load_rgb(image_path(settings, image)))

    model = load_model(version)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-io") as pool:
        ahead: Future | None = pool.submit(read, images[0]) if images else None
        writing: tuple[Future, Image, Path, float] | None = None
        for i, image in enumerate(images):
            x = ahead.result()
            ahead = pool.submit(read, images[i + 1]) if i + 1 < len(images) else None
            path = embedding_file(settings, version, image.sha256)
            seconds = 0.0
            if x is not None:
                start = time.perf_counter()
                with _embed_lock, torch.inference_mode():
                    emb = encode(model.image_encoder, x, settings.encoder_precision).numpy()
                seconds = time.perf_counter() - start
            if writing is not None:  # the previous image's file is written: record it
                writing[0].result()
                _record(session, writing[1], version, *writing[2:])
                bar.update()
                writing = None
            if x is None:
                _record(session, image, version, path, seconds)
                bar.update()
            else:
                writing = (pool.submit(save_embedding, path, emb), image, path, seconds)
        if writing is not None:
            writing[0].result()
            _record(session, writing[1], version, *writing[2:])
            bar.update()
    bar.close()
    return len(images)
