"""The encoder levers of fast_encoder keep the official embedding."""

from __future__ import annotations

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT

from annotator_backend.fast_encoder import (
    SdpaAttention,
    bf16_copy,
    encode,
    resolve_precision,
    use_sdpa_attention,
)


def small_vit() -> ImageEncoderViT:
    """A 2-block ViT with one windowed and one global block, non-zero relative positions."""
    torch.manual_seed(0)
    enc = ImageEncoderViT(
        img_size=128,
        patch_size=16,
        embed_dim=96,
        depth=2,
        num_heads=4,
        out_chans=32,
        use_rel_pos=True,
        window_size=3,
        global_attn_indexes=(1,),
    ).eval()
    for block in enc.blocks:
        torch.nn.init.normal_(block.attn.rel_pos_h, std=0.5)
        torch.nn.init.normal_(block.attn.rel_pos_w, std=0.5)
    return enc


def test_sdpa_attention_matches_official() -> None:
    enc = small_vit()
    x = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        ref = enc(x)
        use_sdpa_attention(enc)
        assert all(type(b.attn) is SdpaAttention for b in enc.blocks)
        out = enc(x)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4)
    assert set(enc.state_dict()) == set(small_vit().state_dict())  # same weights, same file format


def test_chunked_global_attention_matches_official(monkeypatch: pytest.MonkeyPatch) -> None:
    """The global block (64 tokens here) takes the chunked path, with a partial last chunk."""
    from annotator_backend import fast_encoder

    monkeypatch.setattr(fast_encoder, "GLOBAL_TOKENS", 16)  # the windowed block (9) stays on SDPA
    monkeypatch.setattr(fast_encoder, "CHUNK_ROWS", 5)
    enc = small_vit()
    x = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        ref = enc(x)
        use_sdpa_attention(enc)
        out = enc(x)
        low = encode(enc, x, "bf16")
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4)
    assert torch.nn.functional.cosine_similarity(low.flatten(), ref.flatten(), dim=0) > 0.99


def test_bf16_copy_keeps_the_embedding_close() -> None:
    enc = use_sdpa_attention(small_vit())
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        ref = enc(x)
        out = encode(enc, x, "bf16")
        assert torch.equal(encode(enc, x, "fp32"), ref)
    assert out.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.99
    low = bf16_copy(enc)
    assert low is bf16_copy(enc), "cast once, reused"
    assert all(p.dtype == torch.bfloat16 for p in low.parameters())
    assert all(p.dtype == torch.float32 for p in enc.parameters()), "the model itself is untouched"


def test_precision_choice() -> None:
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) in ("bf16", "fp32")
    with pytest.raises(ValueError, match="encoder precision"):
        resolve_precision("int3", torch.device("cpu"))
