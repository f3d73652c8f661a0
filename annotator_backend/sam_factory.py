"""Build SAM models and load official-format checkpoints (plain state dicts)."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from .archs import ARCHS, SAM_ARCHS, CheckpointError

# Width of the ViT patch embedding tells the official architectures apart.
_PATCH_WIDTH_TO_ARCH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


def build_bootstrap_sam() -> Sam:
    """SAM's prompt encoder and mask decoder around the project's small image encoder."""
    from .bootstrap.encoder import BootstrapEncoder

    return Sam(
        image_encoder=BootstrapEncoder(),
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(64, 64),
            input_image_size=(1024, 1024),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def build_sam(arch: str) -> Sam:
    """An untrained model of architecture `arch` (vit_b, vit_l, vit_h or bootstrap), in eval mode."""
    if arch == "bootstrap":
        model = build_bootstrap_sam()
    elif arch in SAM_ARCHS:
        model = sam_model_registry[arch](checkpoint=None)
    else:
        raise CheckpointError(f"unknown model type {arch!r}; expected one of {', '.join(ARCHS)}")
    return model.eval()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file as a state dict of tensors, or raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        data = path.read_bytes()
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a SAM state dict (expected a mapping of tensors)")
    return state


def guess_arch(state: dict[str, torch.Tensor]) -> str | None:
    """The architecture a state dict was saved from, where its keys tell."""
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if weight is not None:
        return _PATCH_WIDTH_TO_ARCH.get(int(weight.shape[0]))
    if any(k.startswith("image_encoder.") for k in state) and "mask_decoder.iou_token.weight" in state:
        return "bootstrap"
    return None


def load_sam(path: Path, arch: str) -> Sam:
    """Load a checkpoint into a model of `arch`; refuse one of another architecture."""
    state = read_state_dict(path)
    if arch not in ARCHS:
        raise CheckpointError(f"unknown model type {arch!r}; expected one of {', '.join(ARCHS)}")
    guessed = guess_arch(state)
    if guessed is None:
        raise CheckpointError(f"{path}: does not look like a SAM checkpoint (no image encoder keys)")
    if guessed != arch:
        raise CheckpointError(f"{path}: this is a {guessed} checkpoint, not {arch}")
    model = build_sam(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"{path}: does not match {arch}: {' '.join(first)}") from exc
    return model.eval()
