"""Faster inference of SAM's image encoder, same weights and (to bf16 precision) same embedding.

Two levers, measured by `bench/encoder.py`:

- `SdpaAttention`: the ViT attention block computed with `F.scaled_dot_product_attention`, the
  decomposed relative-position term passed as its additive mask. Same parameters and state
  dict as segment-anything's `Attention`; fp32 results agree to ~1e-6.
- `encoder_autocast`: bf16 autocast for the encoder on CPUs with native bf16 (AVX512-BF16 or
  AMX) and on CUDA. Elsewhere bf16 is emulated and slower, so "auto" stays in fp32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.modeling.image_encoder import Attention, get_rel_pos

PRECISIONS = ("auto", "bf16", "fp32")


class SdpaAttention(Attention):
    """segment-anything's `Attention` with the product, bias and softmax fused by SDPA."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, heads, H*W, head_dim]
        bias = None
        if self.use_rel_pos:
            rh = get_rel_pos(h, h, self.rel_pos_h).to(q.dtype)  # [H, H, head_dim]
            rw = get_rel_pos(w, w, self.rel_pos_w).to(q.dtype)  # [W, W, head_dim]
            r_q = q.reshape(b * self.num_heads, h, w, -1)
            rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
            rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
            bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(
                b, self.num_heads, h * w, h * w
            )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.reshape(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def use_sdpa_attention(model: Sam) -> Sam:
    """Switch every ViT attention block of `model` to `SdpaAttention` (in place, idempotent)."""
    for module in model.modules():
        if type(module) is Attention:
            module.__class__ = SdpaAttention
    return model


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto" -> "bf16" on CUDA or a CPU with native bf16, else "fp32"."""
    if precision not in PRECISIONS:
        raise ValueError(f"encoder precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


@contextlib.contextmanager
def encoder_autocast(model: Sam, precision: str = "auto") -> Iterator[str]:
    """Run the block under bf16 autocast when `precision` resolves to bf16; yields the choice."""
    device = next(model.parameters()).device
    chosen = resolve_precision(precision, device)
    if chosen == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield chosen
    else:
        yield chosen
