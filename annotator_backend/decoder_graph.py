"""SAM's prompt encoder + mask decoder rewritten for a fast ONNX graph, same math.

`Sam.mask_decoder.predict_masks` works on the 64x64 image tokens in NCHW and projects all
4096 of them to keys, values and queries in every attention. Here the same function is
computed with three changes that only reorder floating-point operations:

* attention between the few prompt tokens (N, about 7) and the 4096 image tokens is
  reassociated so that no 4096-row projection is formed: token->image scores are
  ``(Q_h W_k,h) (X + PE)^T`` and values ``(softmax X) W_v,h^T``; image->token scores are
  ``(X + PE) (W_q,h^T K_h^T)`` and outputs ``softmax (V_h W_o,h^T)`` (the key bias of the
  first cancels in the softmax; softmax rows sum to 1, so the value bias passes through);
* image tokens stay channel-last ([4096, 256]) from the input to the output: the mask
  downscaling convolutions (kernel 2, stride 2) become patch matmuls, the output upscaling
  transposed convolutions become matmuls followed by LayerNorm over the last axis, and one
  transpose at the end puts the 4 x 256 x 256 logits in raster order;
* the `has_mask_input` blend is a scale of the mask features and of the last bias (`DenseTerms`).

About 1.0 GMAC per decode instead of 1.75, and no NCHW<->NHWC transposes of image-sized
tensors. The parity test holds it to the official decoder (tests/test_onnx_parity.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.modeling.transformer import Attention
from segment_anything.utils.onnx import SamOnnxModel


def _linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    return F.linear(x, layer.weight, layer.bias)


def _per_head(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """A Linear weight [out, in] -> [heads, out / heads, in]."""
    out, inp = weight.shape
    return weight.reshape(heads, out // heads, inp)


def tokens_to_image(att: Attention, q: torch.Tensor, x: torch.Tensor, xp: torch.Tensor) -> torch.Tensor:
    """`att(q, k=xp, v=x)` for N prompt tokens q [N, C] over image tokens x, xp [HW, C]."""
    h = att.num_heads
    queries = _linear(q, att.q_proj)  # [N, Ci]
    n, ci = queries.shape
    d = ci // h
    qh = queries.reshape(n, h, d).transpose(0, 1)  # [h, N, d]
    a = (qh @ _per_head(att.k_proj.weight, h)) * (1.0 / math.sqrt(d))  # [h, N, C]
    scores = torch.softmax(a.reshape(h * n, -1) @ xp.transpose(0, 1), dim=-1)  # [hN, HW]
    mixed = (scores @ x).reshape(h, n, -1)  # [h, N, C]
    out = mixed @ _per_head(att.v_proj.weight, h).transpose(1, 2) + att.v_proj.bias.reshape(h, 1, d)
    return _linear(out.transpose(0, 1).reshape(n, ci), att.out_proj)


def image_to_tokens(att: Attention, xp: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """`att(q=xp, k, v)` for image tokens xp [HW, C] over N prompt tokens k, v [N, C]."""
    h = att.num_heads
    keys = _linear(k, att.k_proj)
    values = _linear(v, att.v_proj)
    n, ci = keys.shape
    d = ci // h
    kh = keys.reshape(n, h, d).transpose(0, 1)  # [h, N, d]
    vh = values.reshape(n, h, d).transpose(0, 1)
    scale = 1.0 / math.sqrt(d)
    wq = _per_head(att.q_proj.weight, h)  # [h, d, C]
    b = (wq.transpose(1, 2) @ kh.transpose(1, 2)) * scale  # [h, C, N]
    bias = (att.q_proj.bias.reshape(h, 1, d) @ kh.transpose(1, 2)) * scale  # [h, 1, N]
    scores = xp @ b.transpose(0, 1).reshape(-1, h * n) + bias.reshape(1, h * n)  # [HW, hN]
    scores = torch.softmax(scores.reshape(-1, h, n), dim=-1).reshape(-1, h * n)
    wo = att.out_proj.weight.reshape(-1, h, d).transpose(0, 1)  # [h, C, d]
    values_out = vh @ wo.transpose(1, 2)  # [h, N, C]
    return scores @ values_out.reshape(h * n, -1) + att.out_proj.bias


def _layer_norm(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
    """LayerNorm over the last axis with the parameters of a (2d) LayerNorm module."""
    return F.layer_norm(x, (norm.weight.shape[0],), norm.weight, norm.bias, norm.eps)


class DenseTerms(NamedTuple):
    """The dense prompt embedding D = y w3 + c: y [HW, C2] (zero without a mask; None in a
    graph made for prompts without one, where D is the constant c), w3 [C2, C] (the mask
    embedding's last 1x1 conv), c [C]."""

    y: torch.Tensor | None
    w3: torch.Tensor
    c: torch.Tensor

    def embedding(self) -> torch.Tensor:
        """D itself: [HW, C] ([C] when y is None)."""
        return self.c if self.y is None else self.y @ self.w3 + self.c

    def through(self, proj: torch.nn.Linear, heads: int) -> torch.Tensor:
        """w3 followed by a projection's weight, per head: [heads, C2, d]."""
        return (self.w3 @ proj.weight.t()).reshape(self.w3.shape[0], heads, -1).transpose(0, 1)


class FastDecoderModel(SamOnnxModel):
    """The contract of DESIGN.md §3: (embedding, points, mask input) -> 4 low-res logits, IoUs.

    Output index 0 is the single-mask output, 1..3 the multimask outputs, as `predict_masks`.
    """

    def __init__(self, model: Sam) -> None:
        super().__init__(model, return_single_mask=False)
        h, w = model.prompt_encoder.image_embedding_size
        self.grid = (h, w)
        self.channels = model.prompt_encoder.embed_dim
        with torch.no_grad():  # a constant of the graph, not sin/cos at every decode
            pos = model.prompt_encoder.get_dense_pe().reshape(self.channels, -1).t().contiguous()
        self.register_buffer("pos", pos, persistent=False)

    def mask_features(self, mask_input: torch.Tensor) -> torch.Tensor:
        """mask_input [1, 1, 4H, 4W] -> the mask embedding before its last 1x1 conv [HW, C2]."""
        conv1, norm1, _, conv2, norm2, _, _ = self.model.prompt_encoder.mask_downscaling
        gh, gw = self.grid
        # Each token sees a 4x4 patch of mask_input: 2x2 sub-patches (conv1) of 2x2 pixels.
        m = mask_input.reshape(gh, 2, 2, gw, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(gh * gw, 4, 4)
        y = m @ conv1.weight.reshape(conv1.out_channels, 4).t() + conv1.bias
        y = F.gelu(_layer_norm(y, norm1))  # [HW, 4 sub-patches, C1]
        w2 = conv2.weight.permute(0, 2, 3, 1).reshape(conv2.out_channels, -1)
        return F.gelu(_layer_norm(y.reshape(gh * gw, -1) @ w2.t() + conv2.bias, norm2))

    def dense_terms(
        self, mask_input: torch.Tensor | None, has_mask_input: torch.Tensor | None = None
    ) -> DenseTerms:
        """The dense prompt embedding (mask_input's, or `no_mask_embed`) as `y @ w3 + c`; for a
        graph without mask inputs (mask_input None), y is None and c is `no_mask_embed`."""
        pe = self.model.prompt_encoder
        conv3 = pe.mask_downscaling[-1]
        w3 = conv3.weight.reshape(conv3.out_channels, -1).t()
        if mask_input is None:
            return DenseTerms(y=None, w3=w3, c=pe.no_mask_embed.weight[0])
        return DenseTerms(
            y=self.mask_features(mask_input) * has_mask_input,
            w3=w3,
            c=has_mask_input * conv3.bias + (1 - has_mask_input) * pe.no_mask_embed.weight[0],
        )

    def upscale(self, x: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """Image tokens [HW, C] and hypernetwork outputs [M, C/8] -> logits [1, M, 4H, 4W]."""
        up1, norm, _, up2, _ = self.model.mask_decoder.output_upscaling
        gh, gw = self.grid
        w1 = up1.weight.permute(0, 2, 3, 1).reshape(up1.in_channels, -1)  # [C, (dy, dx, C/4)]
        y = (x @ w1 + up1.bias.repeat(4)).reshape(gh * gw * 4, up1.out_channels)
        y = F.gelu(_layer_norm(y, norm))  # rows (y, x, dy, dx)
        w2 = up2.weight.permute(0, 2, 3, 1).reshape(up2.in_channels, -1)  # [C/4, (ey, ex, C/8)]
        y = F.gelu(y @ w2 + up2.bias.repeat(4)).reshape(-1, up2.out_channels)
        m = hyper.shape[0]
        masks = (y @ hyper.t()).reshape(gh, gw, 2, 2, 2, 2, m)  # (y, x, dy, dx, ey, ex, mask)
        return masks.permute(6, 0, 2, 4, 1, 3, 5).reshape(1, m, 4 * gh, 4 * gw)

    def prompt_tokens(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """The IoU token, the mask tokens and the point embeddings: [5 + N, C]."""
        decoder = self.model.mask_decoder
        sparse = self._embed_points(point_coords, point_labels)[0]
        return torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight, sparse], dim=0)

    @staticmethod
    def token_self_attention(
        layer: torch.nn.Module, queries: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """The first half of a two-way block on the tokens: self-attention, then norm1."""
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries[None], k=queries[None], v=queries[None])[0]
        else:
            q = queries + tokens
            queries = queries + layer.self_attn(q=q[None], k=q[None], v=queries[None])[0]
        return layer.norm1(queries)

    def two_way_layers(
        self, layers: list, queries: torch.Tensor, tokens: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-way blocks over queries [T, C] and image tokens x [HW, C]."""
        pos = self.pos
        for layer in layers:
            queries = self.token_self_attention(layer, queries, tokens)
            xp = x + pos
            attn = tokens_to_image(layer.cross_attn_token_to_image, queries + tokens, x, xp)
            queries = layer.norm2(queries + attn)
            queries = layer.norm3(queries + layer.mlp(queries))
            attn = image_to_tokens(layer.cross_attn_image_to_token, xp, queries + tokens, queries)
            x = _layer_norm(x + attn, layer.norm4)
        return queries, x

    def heads(
        self, queries: torch.Tensor, tokens: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The final token->image attention, the hypernetworks, the upscaling, the IoU head."""
        decoder = self.model.mask_decoder
        tr = decoder.transformer
        attn = tokens_to_image(tr.final_attn_token_to_image, queries + tokens, x, x + self.pos)
        queries = tr.norm_final_attn(queries + attn)
        n_masks = decoder.num_mask_tokens
        hyper = torch.stack(
            [decoder.output_hypernetworks_mlps[i](queries[1 + i]) for i in range(n_masks)], dim=0
        )
        iou = decoder.iou_prediction_head(queries[0:1])
        return self.upscale(x, hyper), iou

    @torch.no_grad()
    def forward(  # type: ignore[override]
        self,
        image_embeddings: torch.Tensor,  # [1, C, H, W]
        point_coords: torch.Tensor,  # [1, N, 2] in the resized-1024 frame
        point_labels: torch.Tensor,  # [1, N]
        mask_input: torch.Tensor,  # [1, 1, 4H, 4W]
        has_mask_input: torch.Tensor,  # [1]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.prompt_tokens(point_coords, point_labels)
        x = (
            image_embeddings.reshape(self.channels, -1).t()
            + self.dense_terms(mask_input, has_mask_input).embedding()
        )
        queries, x = self.two_way_layers(list(self.model.mask_decoder.transformer.layers), tokens, tokens, x)
        return self.heads(queries, tokens, x)
