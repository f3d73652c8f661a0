"""Model versions: import checkpoints, keep their files, activate, load and export decoders."""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from segment_anything.modeling import Sam
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .config import Settings
from .fast_encoder import use_sdpa_attention
from .models import ModelVersion
from .onnx_export import (
    GRAPH_VERSION,
    export_decoder,
    export_official,
    export_split,
    graph_version,
    image_side_matmuls,
    quantize_decoder,
)
from .sam_factory import ARCHS, CheckpointError, load_sam
from .storage import atomic_copy, sha256_file

BOOTSTRAP_WEIGHTS = Path(__file__).parent / "bootstrap" / "bootstrap_v1.pt"

_cache: dict[tuple[int, str], Sam] = {}
_cache_lock = threading.Lock()
_export_lock = threading.Lock()
_current: dict[tuple[str, int], bool] = {}  # (decoder path, mtime_ns) -> exported by this graph
# Decoder files a version can serve (DESIGN.md §3): the fp32 contract graph, its dynamically
# quantized copy (DECODER_QUANTIZED=1), the same function split into a per-image ("prepare")
# and a per-click ("split") graph (decoder_split.py; what the annotate page runs by default),
# the per-click graph's quantized copy (the page's with DECODER_QUANTIZED=1), and the official
# demo's export (benchmark anchor only).
DECODER_VARIANTS = ("fp32", "int8", "split", "prepare", "nomask", "split_int8", "nomask_int8", "official")


def encoder_digest(model: Sam) -> str:
    """A digest of the image encoder's weights: equal digests give equal embeddings."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.image_encoder.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def import_checkpoint(
    session: Session,
    settings: Settings,
    path: Path,
    arch: str,
    *,
    name: str | None = None,
    activate: bool = False,
    kind: str = "sam",
    trained: bool = True,
    parent_id: int | None = None,
    info: dict | None = None,
) -> ModelVersion:
    """Validate a checkpoint, copy it under the data dir, export its decoder, register it.

    Raises CheckpointError (and registers nothing, leaves no file) when the checkpoint is
    corrupt or of another architecture. The caller commits.
    """
    if arch not in ARCHS:
        raise CheckpointError(f"unknown model type {arch!r}; expected one of {', '.join(ARCHS)}")
    path = Path(path)
    model = load_sam(path, arch)
    digest = sha256_file(path)
    folder = settings.models_dir / f"{arch}-{digest[:16]}"
    created = not folder.exists()
    try:
        ckpt = atomic_copy(path, folder / "checkpoint.pth")
        onnx_path = export_decoder(model, folder / "decoder.onnx")
        _export_split_beside(model, onnx_path)  # what the annotate page loads
        version = ModelVersion(
            name=name or f"{arch} {digest[:8]}",
            kind=kind,
            arch=arch,
            parent_id=parent_id,
            checkpoint_path=str(ckpt),
            checkpoint_sha256=digest,
            encoder_sha256=encoder_digest(model),
            onnx_path=str(onnx_path),
            trained=trained,
            info=info or {},
        )
        session.add(version)
        session.flush()
        if activate:
            activate_version(session, version.id)
    except BaseException:
        session.rollback()
        if created:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        raise
    return version


def activate_version(session: Session, version_id: int) -> ModelVersion:
    """Make `version_id` the one active model version."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise LookupError(f"no model version {version_id}")
    session.execute(update(ModelVersion).values(is_active=False))
    version.is_active = True
    session.flush()
    return version


def active_version(session: Session) -> ModelVersion | None:
    """The active model version, if any."""
    return session.scalars(select(ModelVersion).where(ModelVersion.is_active.is_(True))).first()


def get_version(session: Session, version_id: int | None) -> ModelVersion:
    """A version by id, or the active one when id is None; LookupError when there is none."""
    version = active_version(session) if version_id is None else session.get(ModelVersion, version_id)
    if version is None:
        raise LookupError("no active model" if version_id is None else f"no model version {version_id}")
    return version


def load_model(version: ModelVersion) -> Sam:
    """The PyTorch model of a version (cached per process)."""
    key = (version.id, version.checkpoint_sha256)
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            model = use_sdpa_attention(load_sam(Path(version.checkpoint_path), version.arch))
            _cache.clear()  # keep one model in memory: vit_h is 2.5 GB
            _cache[key] = model
    return model


def _is_current(path: Path) -> bool:
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _current:
        _current[key] = graph_version(path) == GRAPH_VERSION
    return _current[key]


def ensure_onnx(version: ModelVersion) -> Path:
    """The decoder file of a version, exported again if it went missing or predates the
    current graph (`onnx_export.GRAPH_VERSION`)."""
    path = Path(version.onnx_path or Path(version.checkpoint_path).with_name("decoder.onnx"))
    with _export_lock:
        if not path.exists() or not _is_current(path):
            export_decoder(load_model(version), path)
    return path


def served_variant(settings: Settings) -> str:
    """The decoder variant `/models/<id>/decoder.onnx` serves without `?variant`: the contract's."""
    return "int8" if settings.decoder_quantized else "fp32"


def page_variant(settings: Settings) -> str:
    """The decoder variant the annotate page runs: the split graphs, fp32 or quantized."""
    return "split_int8" if settings.decoder_quantized else "split"


def _export_split_beside(model: Sam, fp32: Path) -> None:
    names = ("prepare", "split", "nomask")
    export_split(model, *(fp32.with_name(f"decoder.{n}.onnx") for n in names))


def decoder_file(version: ModelVersion, variant: str = "fp32") -> Path:
    """The file of a decoder variant (see DECODER_VARIANTS), made on first use beside the fp32
    one: `decoder.int8.onnx` (quantized copy), `decoder.prepare.onnx`, `decoder.split.onnx` and
    `decoder.nomask.onnx` (the split graphs: per image, per click, per click without a mask
    input), `decoder.split_int8.onnx` and `decoder.nomask_int8.onnx` (the per-click ones
    quantized), `decoder.official.onnx` (official export)."""
    if variant not in DECODER_VARIANTS:
        raise ValueError(f"unknown decoder variant {variant!r}; expected one of {DECODER_VARIANTS}")
    fp32 = ensure_onnx(version)
    if variant == "fp32":
        return fp32
    # The file a variant is made from: the quantized copies follow their fp32 graph.
    per_click = variant in ("split_int8", "nomask_int8")
    source = decoder_file(version, variant.removesuffix("_int8")) if per_click else fp32
    path = fp32.with_name(f"decoder.{variant}.onnx")
    with _export_lock:
        if not path.exists() or path.stat().st_mtime_ns < source.stat().st_mtime_ns:
            if variant.endswith("int8"):
                quantize_decoder(source, path, image_side_matmuls(source))
            elif variant in ("split", "prepare", "nomask"):
                _export_split_beside(load_model(version), fp32)
            else:
                export_official(load_model(version), path)
    return path


def register_bootstrap(session: Session, settings: Settings) -> ModelVersion | None:
    """Register and activate the shipped bootstrap model on a database that has no model."""
    if not BOOTSTRAP_WEIGHTS.exists():
        return None
    if session.scalars(select(ModelVersion).limit(1)).first() is not None:
        return None
    return import_checkpoint(
        session,
        settings,
        BOOTSTRAP_WEIGHTS,
        "bootstrap",
        name="bootstrap v1",
        kind="bootstrap",
        activate=True,
    )


def register_untrained_vit_b(session: Session, settings: Settings) -> ModelVersion:
    """An untrained vit_b (random weights, seed 0) for a demo with no trained model at hand."""
    from .sam_factory import build_sam

    torch.manual_seed(0)
    tmp = settings.models_dir / "untrained_vit_b.pth"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_sam("vit_b").state_dict(), tmp)
    try:
        return import_checkpoint(
            session,
            settings,
            tmp,
            "vit_b",
            name="vit_b UNTRAINED (random weights)",
            trained=False,
            activate=True,
        )
    finally:
        tmp.unlink(missing_ok=True)
