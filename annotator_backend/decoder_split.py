"""The decoder split in two for the browser: what depends only on the image, run once per
image, and what depends on the prompt, run at every click. Same function as
`decoder_graph.FastDecoderModel` (tests/test_onnx_parity.py holds them together).

The first two-way block reads the image tokens before any prompt has touched them, so its
image-side projections can be made once per image (`PrepareModel`):

* the token->image keys ``(X + PE) W_k^T + b_k`` and values ``X W_v^T + b_v``;
* the image->token queries ``((X + PE) W_q^T + b_q) / sqrt(d)``;

each [heads, HW, d], d = 16 for SAM: 3 x 2 MiB of float32 per image. The dense prompt
embedding enters them linearly (``D = y w3 + c``, y the 16-channel mask features), so at a
click (`SplitDecoderModel`) the mask's share is a few million multiply-adds of rank 16, and
the first block's attentions cost about 30 M instead of 235 M multiply-adds: a decode drops
from about 1.0 to 0.8 GMAC. Constant key terms cancel in the softmax; constant value terms
pass through it (its rows sum to 1).
"""

from __future__ import annotations

import math

import torch
from segment_anything.modeling import Sam
from segment_anything.modeling.transformer import Attention

from .decoder_graph import DenseTerms, FastDecoderModel, _layer_norm, _linear

PREPARED_NAMES = ["image_tokens", "keys", "values", "queries"]


def _heads(att: Attention) -> tuple[int, float]:
    """An attention's head count and score scale 1 / sqrt(d)."""
    return att.num_heads, 1.0 / math.sqrt(att.internal_dim // att.num_heads)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[HW, Ci] -> [heads, HW, Ci / heads]."""
    return x.reshape(x.shape[0], heads, -1).transpose(0, 1)


class PrepareModel(torch.nn.Module):
    """image_embeddings [1, C, H, W] -> image tokens [HW, C] and the first block's keys, values
    (token->image) and scaled queries (image->token), each [heads, HW, d]."""

    def __init__(self, model: Sam) -> None:
        super().__init__()
        self.fast = FastDecoderModel(model)

    @torch.no_grad()
    def forward(self, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        fast = self.fast
        layer = fast.model.mask_decoder.transformer.layers[0]
        t2i: Attention = layer.cross_attn_token_to_image
        i2t: Attention = layer.cross_attn_image_to_token
        x = image_embeddings.reshape(fast.channels, -1).t()
        xp = x + fast.pos
        keys = _split_heads(_linear(xp, t2i.k_proj), t2i.num_heads)
        values = _split_heads(_linear(x, t2i.v_proj), t2i.num_heads)
        heads, scale = _heads(i2t)
        queries = _split_heads(_linear(xp, i2t.q_proj), heads) * scale
        return x.contiguous(), keys.contiguous(), values.contiguous(), queries.contiguous()


class SplitDecoderModel(FastDecoderModel):
    """(prepared image tensors, points, mask input) -> 4 low-res logits, IoUs: the contract's
    outputs (DESIGN.md §3) from `PrepareModel`'s outputs instead of the embedding."""

    @torch.no_grad()
    def forward(  # type: ignore[override]
        self,
        image_tokens: torch.Tensor,  # [HW, C]
        keys: torch.Tensor,  # [h, HW, d]
        values: torch.Tensor,  # [h, HW, d]
        queries_img: torch.Tensor,  # [h, HW, d], scaled
        point_coords: torch.Tensor,  # [1, N, 2]
        point_labels: torch.Tensor,  # [1, N]
        mask_input: torch.Tensor,  # [1, 1, 4H, 4W]
        has_mask_input: torch.Tensor,  # [1]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dense = self.dense_terms(mask_input, has_mask_input)
        return self.decode((image_tokens, keys, values, queries_img), point_coords, point_labels, dense)

    def decode(
        self,
        prepared: tuple[torch.Tensor, ...],
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        dense: DenseTerms,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`PrepareModel`'s outputs, the points and the dense prompt -> logits, IoUs."""
        image_tokens, keys, values, queries_img = prepared
        layers = list(self.model.mask_decoder.transformer.layers)
        layer = layers[0]
        tokens = self.prompt_tokens(point_coords, point_labels)
        x = image_tokens + dense.embedding()

        queries = self.token_self_attention(layer, tokens, tokens)
        attn = self._tokens_to_image(layer.cross_attn_token_to_image, queries + tokens, keys, values, dense)
        queries = layer.norm2(queries + attn)
        queries = layer.norm3(queries + layer.mlp(queries))
        attn = self._image_to_tokens(
            layer.cross_attn_image_to_token, queries_img, queries + tokens, queries, dense
        )
        x = _layer_norm(x + attn, layer.norm4)

        queries, x = self.two_way_layers(layers[1:], queries, tokens, x)
        return self.heads(queries, tokens, x)

    @staticmethod
    def _tokens_to_image(
        att: Attention, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, dense: DenseTerms
    ) -> torch.Tensor:
        """`att(q, k=X + D + PE, v=X + D)` for prompt tokens q [N, C], from the prepared keys and
        values [h, HW, d] (without D); D enters through rank-C2 terms."""
        h, scale = _heads(att)
        qh = _split_heads(_linear(q, att.q_proj), h) * scale  # [h, N, d]
        scores = qh @ keys.transpose(1, 2)  # [h, N, HW]
        if dense.y is not None:
            scores = scores + (qh @ dense.through(att.k_proj, h).transpose(1, 2)) @ dense.y.t()
        p = torch.softmax(scores, dim=-1)
        cv = _split_heads(dense.c[None] @ att.v_proj.weight.t(), h)  # [h, 1, d]
        mixed = p @ values + cv  # [h, N, d]
        if dense.y is not None:
            mixed = mixed + (p @ dense.y) @ dense.through(att.v_proj, h)
        return _linear(mixed.transpose(0, 1).reshape(q.shape[0], -1), att.out_proj)

    @staticmethod
    def _image_to_tokens(
        att: Attention, queries_img: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dense: DenseTerms
    ) -> torch.Tensor:
        """`att(q=X + D + PE, k, v)` for prompt tokens k, v [N, C], from the prepared, scaled
        queries [h, HW, d] (without D); D enters through rank-C2 terms."""
        h, scale = _heads(att)
        kh = _split_heads(_linear(k, att.k_proj), h)  # [h, N, d]
        vh = _split_heads(_linear(v, att.v_proj), h)
        cq = _split_heads((dense.c[None] @ att.q_proj.weight.t()) * scale, h)  # [h, 1, d]
        kt = kh.transpose(1, 2)  # [h, d, N]
        scores = queries_img @ kt + cq @ kt  # [h, HW, N]
        if dense.y is not None:
            scores = scores + dense.y @ ((dense.through(att.q_proj, h) * scale) @ kt)
        p = torch.softmax(scores, dim=-1)
        n = kh.shape[1]
        wo = att.out_proj.weight.reshape(att.out_proj.out_features, h, -1).transpose(0, 1)  # [h, C, d]
        values_out = vh @ wo.transpose(1, 2)  # [h, N, C]
        p = p.transpose(0, 1).reshape(-1, h * n)  # [HW, h N]
        return p @ values_out.reshape(h * n, -1) + att.out_proj.bias


class NoMaskDecoderModel(SplitDecoderModel):
    """`SplitDecoderModel` for prompts without a mask input (an object's first click, a hover
    preview): the same outputs as it gives with ``has_mask_input = 0``, from the prepared tensors
    and the points alone. Without a mask the dense prompt is the constant `no_mask_embed`, so the
    mask features and their rank-16 terms drop out of the graph."""

    @torch.no_grad()
    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """`SplitDecoderModel.forward`'s inputs (and shapes) up to the points."""
        *prepared, point_coords, point_labels = inputs
        return self.decode(tuple(prepared), point_coords, point_labels, self.dense_terms(None))
