"""Patch discriminator conditioned on a segmentation map (for SKF's semantic adversarial loss)."""

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


@ARCH_REGISTRY.register()
class SemanticPatchDiscriminator(nn.Module):
    """PatchGAN discriminator on an image concatenated with its segmentation map.

    ``num_layers`` stride-2 4x4 convolutions (widths ``num_feat * min(2^i, 8)``), one stride-1
    4x4 convolution, and a 4x4 convolution to one score per patch (about 70x70 pixels of
    receptive field with ``num_layers: 3``), LeakyReLU(0.2) in between, spectral normalisation
    on every convolution and no batch statistics (the region-masked inputs of the semantic
    adversarial loss would skew them).

    Args:
        num_in_ch (int): Image channels. Default: 3.
        num_classes (int): Channels of the segmentation map (one-hot or probabilities), e.g. 150
            for ADE20K. Default: 150.
        num_feat (int): Width of the first layer. Default: 64.
        num_layers (int): Stride-2 layers. Default: 3.
        spectral_norm (bool): Spectral normalisation of the convolutions. Default: True.
    """

    def __init__(self, num_in_ch=3, num_classes=150, num_feat=64, num_layers=3, spectral_norm=True):
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_classes = num_classes
        norm = _spectral_norm if spectral_norm else (lambda m: m)
        widths = [num_feat * min(2**i, 8) for i in range(num_layers + 1)]
        layers = [norm(nn.Conv2d(num_in_ch + num_classes, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for i in range(1, num_layers):
            layers += [norm(nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        layers += [
            norm(nn.Conv2d(widths[num_layers - 1], widths[num_layers], 4, 1, 1)),
            nn.LeakyReLU(0.2, True),
        ]
        layers += [norm(nn.Conv2d(widths[num_layers], 1, 4, 1, 1))]
        self.body = nn.Sequential(*layers)

    def forward(self, x, seg):
        """Score patches of ``x`` given its segmentation.

        Args:
            x (Tensor): Images, (B, num_in_ch, H, W).
            seg (Tensor): Class weights, (B, num_classes, H', W'); resized bilinearly to (H, W)
                if needed.

        Returns:
            Tensor: Patch scores, (B, 1, H / 2^num_layers - 2, W / 2^num_layers - 2).
        """
        if seg.shape[1] != self.num_classes:
            raise ValueError(
                f'segmentation map has {seg.shape[1]} channels, the discriminator expects {self.num_classes}'
            )
        if seg.shape[-2:] != x.shape[-2:]:
            seg = F.interpolate(seg, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return self.body(torch.cat([x, seg.to(x.dtype)], dim=1))
