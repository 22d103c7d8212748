"""Edge loss of DeepSPG (eq. 15, L_edge): squared difference of image gradients."""

import torch.nn.functional as F
from basicsr.losses.loss_util import weight_reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


def gradient_difference_map(pred, target):
    """Per-pixel squared gradient difference, (B, C, H, W).

    With forward differences ``dx = x[..., :, 1:] - x[..., :, :-1]`` and ``dy`` likewise over
    rows, the map at (i, j) is ``(dx_p - dx_t)[i, j]^2 + (dy_p - dy_t)[i, j]^2``, a missing
    difference at the last column / row counting as 0.
    """
    diff = pred - target
    ex = (diff[..., :, 1:] - diff[..., :, :-1]).pow(2)
    ey = (diff[..., 1:, :] - diff[..., :-1, :]).pow(2)
    return F.pad(ex, (0, 1, 0, 0)) + F.pad(ey, (0, 0, 0, 1))


@LOSS_REGISTRY.register()
class SPGEdgeLoss(nn.Module):
    """Squared difference of the horizontal and vertical image gradients of output and target.

    With 'mean', the sum of all squared gradient differences divided by B*C*H*W.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' | 'mean' | 'sum'. Default: 'mean'.
    """

    def __init__(self, loss_weight=1.0, reduction='mean'):
        super().__init__()
        check_reduction(reduction)
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self, pred, target, weight=None):
        """pred, target: (B, C, H, W); weight: optional (B, C, H, W) weight of the map."""
        return self.loss_weight * weight_reduce_loss(gradient_difference_map(pred, target), weight, self.reduction)
