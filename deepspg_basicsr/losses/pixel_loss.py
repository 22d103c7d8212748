"""Pixel loss of DeepSPG (eq. 15, L_pix): mean squared error to the ground truth."""

import torch.nn.functional as F
from basicsr.losses.loss_util import weight_reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

_REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f'Unsupported reduction mode: {reduction}. Supported ones are: {list(_REDUCTIONS)}')


@LOSS_REGISTRY.register()
class SPGPixelLoss(nn.Module):
    """Squared error between output and ground truth.

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
        """pred, target: (B, C, H, W); weight: optional element-wise weight, broadcastable."""
        loss = F.mse_loss(pred, target, reduction='none')
        return self.loss_weight * weight_reduce_loss(loss, weight, self.reduction)
