"""A light gated convolution block for DeepSPG's reflectance U-Net.

Two pre-normalised residual halves, each scaled by a learnable per-channel factor that starts at
zero (so a new block is an identity):

* spatial mixer: LayerNorm -> 1x1 (C -> 2C) -> depth-wise k x k -> gate (split in two, multiply)
  -> channel attention from the global average (a 1x1 on the pooled vector) -> 1x1 (C -> C);
  with ``guide`` (illumination features), the gate's second half is multiplied by ``1 + g`` where
  ``g`` is a 1x1 projection of the guide: where the light was weak the block can weigh its
  smoothing differently (the idea of Retinexformer's illumination-guided attention, at the cost
  of one 1x1 convolution).
* channel mixer: LayerNorm -> 1x1 (C -> 2C) -> gate -> 1x1 (C -> C).

Per pixel it costs about 6 C^2 + 2 k^2 C multiply-adds and 6 C^2 parameters, a third of a
conv3x3 residual block (18 C^2): at equal parameters and FLOPs the network can be deeper, or
wider at full resolution, where the noise that R0 = I / L amplifies has to be removed.
"""

import torch
from torch import nn

from .sem_block import LayerNorm2d


class GatedBlock(nn.Module):
    """Gated depth-wise convolution block (see the module docstring).

    Args:
        channels (int): C, input and output channels.
        kernel_size (int): Kernel of the depth-wise convolution (odd). Default: 3.
        guide_channels (int): Channels of the guide given to ``forward`` (0: no guide). Default: 0.
    """

    def __init__(self, channels, kernel_size=3, guide_channels=0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        c2 = channels * 2
        self.norm1 = LayerNorm2d(channels)
        self.expand = nn.Conv2d(channels, c2, 1)
        self.dwconv = nn.Conv2d(c2, c2, kernel_size, 1, kernel_size // 2, groups=c2)
        self.attention = nn.Conv2d(channels, channels, 1)
        self.project = nn.Conv2d(channels, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.ffn_expand = nn.Conv2d(channels, c2, 1)
        self.ffn_project = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.guide = nn.Conv2d(guide_channels, channels, 1) if guide_channels else None
        if self.guide is not None:
            nn.init.zeros_(self.guide.weight)
            nn.init.zeros_(self.guide.bias)

    def forward(self, x, guide=None):
        """x: (B, C, H, W); guide: (B, guide_channels, H, W) when built with a guide. Returns (B, C, H, W)."""
        a, b = self.dwconv(self.expand(self.norm1(x))).chunk(2, dim=1)
        if self.guide is not None:
            if guide is None:
                raise ValueError('GatedBlock built with guide_channels needs a guide')
            b = b * (1 + self.guide(guide))
        h = a * b
        h = h * self.attention(h.mean(dim=(2, 3), keepdim=True))
        x = x + self.beta * self.project(h)
        a, b = self.ffn_expand(self.norm2(x)).chunk(2, dim=1)
        return x + self.gamma * self.ffn_project(a * b)
