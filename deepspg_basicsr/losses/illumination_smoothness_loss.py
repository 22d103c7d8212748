"""Illumination smoothness loss for zero-reference training (total variation of the illumination)."""

import torch.nn.functional as F
from basicsr.losses.loss_util import weight_reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


@LOSS_REGISTRY.register()
class SPGIllumSmoothnessLoss(nn.Module):
    """Total variation of DeepSPG's illumination map L (``illumination`` of its forward).

    The smoothness prior on the estimated illumination of Retinex-style zero-reference methods:
    Zero-DCE's illumination smoothness loss (Guo et al., CVPR 2020) is a total variation of its
    curve maps, SCI's (Ma et al., "Toward Fast, Flexible, and Robust Low-Light Image
    Enhancement", CVPR 2022) a smoothness term on its illumination. Here, with forward
    differences ``dx = L[..., :, 1:] - L[..., :, :-1]`` and ``dy`` likewise over rows, the map
    at each pixel is ``|dx|^p + |dy|^p`` (a missing difference at the last column / row counts
    as 0); ``power`` p = 2 is Zero-DCE's squared form, p = 1 the edge-preserving anisotropic TV.
    This is the project's implementation.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per pixel, (B, C, H, W)) | 'mean' | 'sum'. Default: 'mean'.
        power (int): p, 1 or 2. Default: 2.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', power=2):
        super().__init__()
        check_reduction(reduction)
        if power not in (1, 2):
            raise ValueError(f'power must be 1 or 2, got {power!r}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.power = power

    def forward(self, illumination):
        """illumination: (B, C, H, W) (DeepSPG: C = 3, in [illum_floor, 1])."""
        dx = (illumination[..., :, 1:] - illumination[..., :, :-1]).abs().pow(self.power)
        dy = (illumination[..., 1:, :] - illumination[..., :-1, :]).abs().pow(self.power)
        loss = F.pad(dx, (0, 1, 0, 0)) + F.pad(dy, (0, 0, 0, 1))
        return self.loss_weight * weight_reduce_loss(loss, None, self.reduction)
