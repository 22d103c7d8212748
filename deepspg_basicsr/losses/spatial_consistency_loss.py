"""Spatial consistency loss for zero-reference training (Zero-DCE's L_spa)."""

import torch.nn.functional as F
from basicsr.losses.loss_util import weight_reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


def _pooled_grey(img, region_size, scale_invariant):
    grey = F.avg_pool2d(img.mean(dim=1, keepdim=True), region_size)
    if scale_invariant:
        grey = grey / grey.mean(dim=(2, 3), keepdim=True).clamp(min=1e-4)
    return grey


@LOSS_REGISTRY.register()
class SPGSpatialConsistencyLoss(nn.Module):
    """Local contrast of the output should follow the input's.

    Zero-DCE (Guo et al., CVPR 2020), spatial consistency loss: output Y and input I are turned
    grey (channel mean) and averaged over non-overlapping ``region_size`` x ``region_size``
    regions (Zero-DCE: 4); for each region i and each of its 4 neighbours j (left, right, up,
    down) the difference ``(|Y_i - Y_j| - |I_i - I_j|)^2`` is summed. The project counts only
    neighbours inside the image (no zero padding at the border), so the per-region map is the
    sum over its 2 to 4 neighbours, and each neighbouring pair appears twice, once per region.
    This is the project's implementation.

    ``scale_invariant: true`` (the project's option, off in Zero-DCE's form) first divides each
    pooled grey image by its own mean, so a global brightening costs nothing and only changes of
    *relative* local contrast are penalised.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per region, (B, 1, H // r, W // r)) | 'mean' | 'sum'. Default: 'mean'.
        region_size (int): Region side r. Default: 4.
        scale_invariant (bool): Compare mean-normalised images. Default: False.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', region_size=4, scale_invariant=False):
        super().__init__()
        check_reduction(reduction)
        if int(region_size) < 1:
            raise ValueError(f'region_size must be >= 1, got {region_size}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.region_size = int(region_size)
        self.scale_invariant = bool(scale_invariant)

    def forward(self, pred, target):
        """pred: output (B, 3, H, W); target: the low-light input, same shape; H, W >= 2 * region_size."""
        y = _pooled_grey(pred, self.region_size, self.scale_invariant)
        i = _pooled_grey(target, self.region_size, self.scale_invariant)
        if min(y.shape[-2:]) < 2:
            raise ValueError(f'SPGSpatialConsistencyLoss: image {tuple(pred.shape[-2:])} has fewer than 2x2 regions')
        eh = ((y[..., :, 1:] - y[..., :, :-1]).abs() - (i[..., :, 1:] - i[..., :, :-1]).abs()).pow(2)
        ev = ((y[..., 1:, :] - y[..., :-1, :]).abs() - (i[..., 1:, :] - i[..., :-1, :]).abs()).pow(2)
        # each pair counts for both regions: right / left neighbours, then down / up neighbours
        loss = F.pad(eh, (0, 1)) + F.pad(eh, (1, 0)) + F.pad(ev, (0, 0, 0, 1)) + F.pad(ev, (0, 0, 1, 0))
        return self.loss_weight * weight_reduce_loss(loss, None, self.reduction)
