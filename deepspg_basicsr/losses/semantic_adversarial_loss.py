"""Semantic-guided adversarial loss (SKF's SA loss), LSGAN-style."""

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


def _resize_weights(weights, size):
    """Area-average (B, K, H, W) weights down (or bilinearly up) to ``size``."""
    if tuple(weights.shape[-2:]) == tuple(size):
        return weights
    if weights.shape[-2] >= size[0] and weights.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(weights, size)
    return F.interpolate(weights, size=size, mode='bilinear', align_corners=False)


@LOSS_REGISTRY.register()
class SemanticAdversarialLoss(nn.Module):
    """LSGAN loss on the whole image and on its hardest semantic region.

    The discriminator (e.g. :class:`~deepspg_basicsr.archs.SemanticPatchDiscriminator`) sees an
    image together with its segmentation map and returns a patch map of scores. Two terms:

    * **global**: ``mean((D(img, seg) - t)^2)`` over the patch map, with ``t`` the real or fake
      label;
    * **local**: the discriminator is run again on the image and map masked to one class
      region, ``D(img * m, seg * m)``, and the squared error is averaged over the patches of
      that region (patch weights: ``m`` area-averaged to the patch map). The region is, per
      image, the **hardest** one: the class whose region of the *enhanced* image gets the
      lowest mean global score (the worst-enhanced class); see :meth:`select_region`. The model
      uses the same region for the ground truth (real) and the output (fake).

    Per image, ``loss = global + local_weight * local``. As in BasicSR's ``GANLoss``,
    ``loss_weight`` applies to the generator's loss only (``is_disc=False``).

    Args:
        loss_weight (float): Weight of the generator loss (keep it small relative to the pixel
            loss, e.g. 0.01). Default: 1.0.
        reduction (str): 'none' (per image, (B,)) | 'mean' | 'sum'. Default: 'mean'.
        local_weight (float): Weight of the region term (0 turns it off). Default: 1.0.
        min_region_fraction (float): Classes covering less than this fraction of an image are
            not candidates for the hardest region (when no class qualifies, the largest one is
            taken). Default: 0.01.
        real_label_val (float): LSGAN target of real images. Default: 1.0.
        fake_label_val (float): LSGAN target of fake images. Default: 0.0.
    """

    def __init__(
        self,
        loss_weight=1.0,
        reduction='mean',
        local_weight=1.0,
        min_region_fraction=0.01,
        real_label_val=1.0,
        fake_label_val=0.0,
    ):
        super().__init__()
        check_reduction(reduction)
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.local_weight = float(local_weight)
        self.min_region_fraction = float(min_region_fraction)
        self.real_label_val = real_label_val
        self.fake_label_val = fake_label_val

    @torch.no_grad()
    def select_region(self, pred, seg):
        """The hardest class region of each image.

        Args:
            pred (Tensor): Discriminator scores of the enhanced images, (B, 1, h, w).
            seg (Tensor): Class weights (one-hot or probabilities), (B, K, H, W).

        Returns:
            Tensor: The region's weights (B, 1, H, W): ``seg[b, k_b]`` with ``k_b`` the class of
            lowest mean score among those covering at least ``min_region_fraction``.
        """
        small = _resize_weights(seg.to(pred.dtype), pred.shape[-2:])  # (B, K, h, w)
        mass = small.flatten(2).sum(-1)
        score = (small * pred).flatten(2).sum(-1) / mass.clamp(min=1e-8)  # (B, K)
        fraction = seg.flatten(2).mean(-1)
        candidate = fraction >= self.min_region_fraction
        none = ~candidate.any(-1)
        candidate[none] = F.one_hot(fraction[none].argmax(-1), seg.shape[1]).bool()
        k = score.masked_fill(~candidate, float('inf')).argmin(-1)
        return seg[torch.arange(seg.shape[0], device=seg.device), k][:, None]

    def forward(self, pred, target_is_real, is_disc=False, pred_local=None, region=None):
        """LSGAN loss.

        Args:
            pred (Tensor): Global discriminator scores, (B, 1, h, w).
            target_is_real (bool): Real (``real_label_val``) or fake (``fake_label_val``) target.
            is_disc (bool): Discriminator loss (unweighted) or generator loss (weighted).
            pred_local (Tensor | None): Scores of the region-masked input, (B, 1, h, w).
            region (Tensor | None): The region's weights, (B, 1, H, W) (see
                :meth:`select_region`); needed with ``pred_local``.

        Returns:
            Tensor: Scalar, or (B,) with reduction 'none'.
        """
        t = self.real_label_val if target_is_real else self.fake_label_val
        loss = (pred - t).pow(2).flatten(1).mean(-1)
        if pred_local is not None and self.local_weight:
            if region is None:
                raise ValueError('pred_local needs its region')
            r = _resize_weights(region.to(pred_local.dtype), pred_local.shape[-2:]).flatten(1)
            local = ((pred_local - t).pow(2).flatten(1) * r).sum(-1) / r.sum(-1).clamp(min=1e-8)
            loss = loss + self.local_weight * local
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return loss if is_disc else self.loss_weight * loss
