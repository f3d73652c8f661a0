"""The bootstrap model's image encoder: a small CNN with a stride-16 feature pyramid.

It replaces SAM's ViT and keeps its contract: input the output of ``Sam.preprocess``
``[B, 3, 1024, 1024]``, output the embedding ``[B, 256, 64, 64]`` (stride 16).

The network is fully convolutional (no absolute positions), so it also runs on any input whose
sides are multiples of 64: ``[B, 3, S, S] -> [B, 256, S/16, S/16]``. Training uses that to learn
on crops of the 1024 frame, which costs a fraction of full frames on a CPU.

Layout (channels, stride): stem 24/2 -> 32/4 -> 48/8 -> 96/16 -> 192/32 -> 256/64. The neck
upsamples the stride-32/64 context to stride 16, adds the stride-16 features and a space-to-depth
view of the stride-4/8 features (fine boundaries that the decoder's 4x upscaling needs), mixes
them with residual blocks and ends with a channel LayerNorm, as SAM's neck does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBN(nn.Sequential):
    """Conv + BatchNorm (+ GELU): [B, cin, H, W] -> [B, cout, H/stride, W/stride]."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.GELU())
        super().__init__(*layers)


class FusedBlock(nn.Module):
    """Residual fused-MBConv (3x3 expand, 1x1 project): [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, c: int, expand: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBN(c, c * expand, 3), ConvBN(c * expand, c, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MBBlock(nn.Module):
    """Residual inverted bottleneck (1x1, depthwise kxk, 1x1): [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, c: int, expand: int = 3, k: int = 5) -> None:
        super().__init__()
        h = c * expand
        self.body = nn.Sequential(ConvBN(c, h, 1), ConvBN(h, h, k, groups=h), ConvBN(h, c, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of [B, C, H, W]."""

    def __init__(self, c: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def _stage(cin: int, cout: int, n: int, block: type[nn.Module]) -> nn.Sequential:
    """Stride-2 downsampling conv then `n` residual blocks."""
    return nn.Sequential(ConvBN(cin, cout, 3, 2), *[block(cout) for _ in range(n)])


class BootstrapEncoder(nn.Module):
    """Small CNN image encoder: [B, 3, S, S] (S = 1024 at inference) -> [B, 256, S/16, S/16]."""

    img_size = 1024

    def __init__(self, out_chans: int = 256, neck_chans: int = 192) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, 24, 3, 2), ConvBN(24, 32, 3, 2), FusedBlock(32))  # /4
        self.s8 = _stage(32, 48, 2, FusedBlock)  # /8
        self.s16 = _stage(48, 96, 3, MBBlock)  # /16
        self.s32 = _stage(96, 192, 3, MBBlock)  # /32
        self.s64 = _stage(192, 256, 2, MBBlock)  # /64
        n = neck_chans
        self.lat16 = nn.Conv2d(96, n, 1)
        self.lat32 = nn.Conv2d(192, n, 1)
        self.lat64 = nn.Conv2d(256, n, 1)
        self.fine = nn.Conv2d(32 * 16 + 48 * 4, n, 1)  # space-to-depth of the /4 and /8 maps
        self.mix = nn.Sequential(nn.BatchNorm2d(n), nn.GELU(), MBBlock(n, 2, 3), MBBlock(n, 2, 5))
        self.out = nn.Sequential(nn.Conv2d(n, out_chans, 1), LayerNorm2d(out_chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 3, S, S] normalised and padded (Sam.preprocess); returns [B, 256, S/16, S/16]."""
        f4 = self.stem(x)  # [B, 32, S/4, S/4]
        f8 = self.s8(f4)  # [B, 48, S/8, S/8]
        f16 = self.s16(f8)  # [B, 96, S/16, S/16]
        f32 = self.s32(f16)  # [B, 192, S/32, S/32]
        f64 = self.s64(f32)  # [B, 256, S/64, S/64]
        size = f16.shape[-2:]
        y = self.lat16(f16)
        y = y + F.interpolate(self.lat32(f32), size=size, mode="bilinear", align_corners=False)
        y = y + F.interpolate(self.lat64(f64), size=size, mode="bilinear", align_corners=False)
        fine = torch.cat([F.pixel_unshuffle(f4, 4), F.pixel_unshuffle(f8, 2)], dim=1)
        y = y + self.fine(fine)
        return self.out(self.mix(y))  # [B, 256, S/16, S/16]
