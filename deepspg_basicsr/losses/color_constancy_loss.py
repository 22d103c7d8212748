"""Colour constancy loss for zero-reference training (Zero-DCE's L_col)."""

from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


@LOSS_REGISTRY.register()
class SPGColorConstancyLoss(nn.Module):
    """Grey-world colour constancy: the mean colour of an image should be grey.

    Zero-DCE (Guo et al., CVPR 2020), colour constancy loss: with J^p the mean of channel p of
    the output, ``L = (J^R - J^G)^2 + (J^R - J^B)^2 + (J^G - J^B)^2`` per image. This is the
    project's implementation.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per image, (B,)) | 'mean' | 'sum'. Default: 'mean'.
    """

    def __init__(self, loss_weight=1.0, reduction='mean'):
        super().__init__()
        check_reduction(reduction)
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self, pred):
        """pred: (B, 3, H, W) RGB."""
        r, g, b = pred.mean(dim=(2, 3)).unbind(dim=1)
        loss = (r - g).pow(2) + (r - b).pow(2) + (g - b).pow(2)
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
