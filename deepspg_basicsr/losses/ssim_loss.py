"""Structure loss: one minus the SSIM map (Gaussian window), per channel."""

import torch.nn.functional as F
from basicsr.losses.loss_util import weight_reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from ..utils.gaussian import gaussian_taps
from .pixel_loss import check_reduction


def ssim_map(pred, target, window_size=11, sigma=1.5, data_range=1.0):
    """SSIM of every pixel and channel (Wang et al. 2004: Gaussian-weighted local means, variances and
    covariance, K1 = 0.01, K2 = 0.03), (B, C, H, W). The window is separable and the borders are
    reflect-padded, so the map has the input's size.

    Args:
        pred, target (Tensor): (B, C, H, W), values in [0, ``data_range``].
        window_size (int): Taps of the Gaussian window. Default: 11.
        sigma (float): Its standard deviation. Default: 1.5.
        data_range (float): L of the constants C1 = (K1 L)^2, C2 = (K2 L)^2. Default: 1.
    """
    c = pred.shape[1]
    g = gaussian_taps(sigma, window_size // 2).to(pred)
    kx, ky = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    pad = window_size // 2

    def blur(x):
        x = F.pad(x, (pad, pad, pad, pad), mode='reflect')
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


@LOSS_REGISTRY.register()
class SPGSSIMLoss(nn.Module):
    """``1 - SSIM`` of output and ground truth (per pixel and channel, see :func:`ssim_map`).

    Pixel losses weigh an error the same wherever it is; SSIM weighs it against the local contrast,
    so noise left in a flat region and a softened edge cost more than a small exposure offset.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' | 'mean' | 'sum'. Default: 'mean'.
        window_size (int): Taps of the Gaussian window. Default: 11.
        sigma (float): Its standard deviation. Default: 1.5.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', window_size=11, sigma=1.5):
        super().__init__()
        check_reduction(reduction)
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.window_size = window_size
        self.sigma = sigma

    def forward(self, pred, target, weight=None):
        """pred, target: (B, C, H, W) in [0, 1], H and W > window_size // 2; weight: optional, broadcastable."""
        loss = 1 - ssim_map(pred, target, self.window_size, self.sigma)
        return self.loss_weight * weight_reduce_loss(loss, weight, self.reduction)
