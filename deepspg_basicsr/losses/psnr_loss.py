"""PSNR loss: the negative PSNR of each image of the batch, the measure the benchmarks average.

The benchmarks report the mean over images of each image's PSNR, i.e. of ``-10 log10(MSE_i)``; the
pixel loss minimises the mean of ``MSE_i``. The two disagree when the error is uncertain: a photo-wide
exposure guess that is 0.3 stops off costs a dark scene far more decibels than a bright one, yet about
the same squared error. This loss trains on each image's ``10 log10(MSE_i + eps)`` itself.

Its gradient is the squared error's divided by ``MSE_i`` (times 10 / ln 10), so with ``loss_weight``
``w`` it weighs like the pixel loss with weight ``w * 4.34 / MSE``: at 25 dB (``MSE`` 3.2e-3) a weight of
7e-4 matches a pixel loss of weight 1.
"""

import math

import torch
from basicsr.losses.loss_util import weight_reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


@LOSS_REGISTRY.register()
class SPGPSNRLoss(nn.Module):
    """``10 log10(mean squared error + eps)`` of each image (the negative of its PSNR for a peak of 1).

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): Over the batch: 'none' | 'mean' | 'sum'. Default: 'mean'.
        eps (float): Added to each image's mean squared error (a 80 dB ceiling). Default: 1e-8.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', eps=1e-8):
        super().__init__()
        check_reduction(reduction)
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.eps = eps

    def forward(self, pred, target, weight=None):
        """pred, target: (B, C, H, W); weight: optional (B,) per-image weight. Returns the loss
        ((B,) with reduction 'none')."""
        mse = (pred - target).square().flatten(1).mean(dim=1)
        loss = (10 / math.log(10)) * torch.log(mse + self.eps)
        return self.loss_weight * weight_reduce_loss(loss, weight, self.reduction)
