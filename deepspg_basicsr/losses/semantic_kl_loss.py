"""Semantic loss of DeepSPG (eq. 15, L_sem): KL divergence between segmentation distributions."""

import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


@LOSS_REGISTRY.register()
class SemanticKLLoss(nn.Module):
    """KL(seg(gt) || seg(out)), per pixel, over the classes of a segmentation network.

    The project reads the paper's L_sem as the KL divergence from the ground truth's class
    distribution to the output's: the output is pulled towards segmenting like the ground
    truth. The model runs the frozen prior (with gradients for the output, without for the
    ground truth) and passes the logits here.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per-pixel map, (B, H, W)) | 'mean' (over pixels) | 'sum'.
            Default: 'mean'.
        temperature (float): Softmax temperature T applied to both logits. Default: 1.0.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', temperature=1.0):
        super().__init__()
        check_reduction(reduction)
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.temperature = temperature

    def forward(self, pred_logits, target_logits):
        """pred_logits: output's logits (B, K, H, W); target_logits: ground truth's, same shape
        (resized bilinearly to pred's size if they differ)."""
        if target_logits.shape[-2:] != pred_logits.shape[-2:]:
            target_logits = F.interpolate(
                target_logits, size=pred_logits.shape[-2:], mode='bilinear', align_corners=False
            )
        log_p = F.log_softmax(target_logits.float() / self.temperature, dim=1)
        log_q = F.log_softmax(pred_logits.float() / self.temperature, dim=1)
        kl = (log_p.exp() * (log_p - log_q)).sum(dim=1)
        if self.reduction == 'mean':
            kl = kl.mean()
        elif self.reduction == 'sum':
            kl = kl.sum()
        return self.loss_weight * kl
