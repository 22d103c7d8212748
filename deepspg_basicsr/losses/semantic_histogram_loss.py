"""Semantic-guided colour histogram loss (SKF's SCH loss)."""

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


def class_weights(seg, size, num_classes=None):
    """Per-class pixel weights from a segmentation map.

    Args:
        seg (Tensor): Either class indices, integer (B, H, W), or per-class weights, float
            (B, K, H, W) (one-hot maps or probabilities; any non-negative weights).
        size (tuple[int]): (H, W) of the images the weights must match: float maps of another
            size are resized bilinearly (antialiased when shrinking), index maps by nearest.
        num_classes (int | None): K for an index map. Default: the largest index + 1.

    Returns:
        Tensor: Float weights, (B, K, H, W).
    """
    if not seg.is_floating_point():
        if seg.dim() != 3:
            raise ValueError(f'an index segmentation map must be (B, H, W), got {tuple(seg.shape)}')
        if tuple(seg.shape[-2:]) != tuple(size):
            seg = F.interpolate(seg[:, None].float(), size=size, mode='nearest')[:, 0].long()
        k = int(seg.max()) + 1 if num_classes is None else num_classes
        return F.one_hot(seg.long(), k).permute(0, 3, 1, 2).float()
    if seg.dim() != 4:
        raise ValueError(f'a weight segmentation map must be (B, K, H, W), got {tuple(seg.shape)}')
    if tuple(seg.shape[-2:]) != tuple(size):
        shrink = seg.shape[-2] > size[0] or seg.shape[-1] > size[1]
        seg = F.interpolate(seg, size=size, mode='bilinear', align_corners=False, antialias=shrink)
    return seg.clamp(min=0)


def soft_class_histograms(img, weights, bins=256, sharpness=4.0, eps=1e-8):
    """Differentiable per-class, per-channel histograms of values in [0, 1].

    Bin j covers [j / bins, (j + 1) / bins); the outer edges are open (-inf and +inf), so a
    value outside [0, 1] counts in the first or last bin and each pixel's memberships sum to 1.
    The membership of a value v in bin j is ``sigmoid(a (v - e_j)) - sigmoid(a (v - e_{j+1}))``
    with ``a = sharpness * bins`` (``sharpness`` is in units of one bin: the soft step rises over
    about 1 / sharpness of a bin). As ``sharpness`` grows this tends to the hard histogram.

    Each histogram is weighted by the class weights of the pixels and divided by the class's
    total weight, so it sums to 1 (a distribution over the bins) for every class with weight.

    Args:
        img (Tensor): (B, C, H, W) images.
        weights (Tensor): (B, K, H, W) non-negative class weights of the pixels.
        bins (int): Number of bins. Default: 256.
        sharpness (float): Steepness of the bin edges, per bin width. Default: 4.
        eps (float): Guards the division for classes without weight. Default: 1e-8.

    Returns:
        tuple[Tensor, Tensor]: histograms (B, K, C, bins) and class weight totals (B, K).
    """
    b, c, h, w = img.shape
    edges = torch.arange(1, bins, device=img.device, dtype=img.dtype) / bins
    # above[b, c, p, j] = soft indicator "pixel p lies above interior edge j", (B, C, P, bins - 1)
    above = torch.sigmoid((img.reshape(b, c, h * w, 1) - edges) * (sharpness * bins))
    wts = weights.reshape(b, -1, h * w).to(img.dtype)
    mass = wts.sum(-1)  # (B, K)
    # Weighted counts above each edge; the outer edges contribute the total mass and 0.
    above_counts = torch.einsum('bkp,bcpj->bkcj', wts, above)
    total = mass[:, :, None, None].expand(-1, -1, c, 1)
    cum = torch.cat([total, above_counts, torch.zeros_like(total)], dim=-1)  # (B, K, C, bins + 1)
    counts = cum[..., :-1] - cum[..., 1:]
    return counts / mass.clamp(min=eps)[:, :, None, None], mass


@LOSS_REGISTRY.register()
class SemanticHistogramLoss(nn.Module):
    """Semantic-guided colour histogram loss (SKF's SCH loss).

    For each semantic class, the colour histogram of each channel of the output and of the
    ground truth is taken over that class's pixels only (differentiable, see
    :func:`soft_class_histograms`); the loss is the L1 distance between the two.

    Normalisation (the project's choice; SKF does not publish one): every class histogram is
    normalised to sum to 1, so a class counts the same whatever its area; the L1 distance is
    summed over the bins (so it lies in [0, 2]) and averaged over the channels; the per-image
    loss is the sum over the classes present in the image (class weight fraction above
    ``min_class_fraction``). Image-level values are reduced by ``reduction``.

    Memory: the soft bin memberships take B * C * H * W * (bins - 1) floats (about 400 MB for
    8 x 3 x 128 x 128 with 256 bins), kept for the backward pass.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per image, (B,)) | 'mean' | 'sum'. Default: 'mean'.
        bins (int): Histogram bins over [0, 1]. Default: 256.
        sharpness (float): Steepness of the soft bin edges, per bin width (large: close to a
            hard histogram, with gradients only near the edges). Default: 4.
        min_class_fraction (float): Classes covering at most this fraction of an image's
            pixels (by weight) are ignored for that image. Default: 0 (every class present).
    """

    def __init__(self, loss_weight=1.0, reduction='mean', bins=256, sharpness=4.0, min_class_fraction=0.0):
        super().__init__()
        check_reduction(reduction)
        if bins < 2:
            raise ValueError(f'bins must be >= 2, got {bins}')
        if sharpness <= 0:
            raise ValueError(f'sharpness must be > 0, got {sharpness}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.bins = int(bins)
        self.sharpness = float(sharpness)
        self.min_class_fraction = float(min_class_fraction)

    def forward(self, pred, target, seg):
        """Compute the loss.

        Args:
            pred (Tensor): Output, (B, C, H, W), values nominally in [0, 1].
            target (Tensor): Ground truth, (B, C, H, W).
            seg (Tensor): Segmentation, class indices (B, H', W') or class weights
                (B, K, H', W'), resized to (H, W) if needed (see :func:`class_weights`).

        Returns:
            Tensor: Scalar, or (B,) with reduction 'none'.
        """
        weights = class_weights(seg, pred.shape[-2:])
        # Only the classes present somewhere in the batch cost anything.
        fraction = weights.flatten(2).mean(-1)  # (B, K)
        keep = (fraction > self.min_class_fraction).any(0)
        weights, fraction = weights[:, keep], fraction[:, keep]
        hist_pred, _ = soft_class_histograms(pred, weights, self.bins, self.sharpness)
        with torch.no_grad():
            hist_target, _ = soft_class_histograms(target.to(pred.dtype), weights, self.bins, self.sharpness)
        dist = (hist_pred - hist_target).abs().sum(-1).mean(-1)  # (B, K)
        valid = (fraction > self.min_class_fraction).to(dist.dtype)
        loss = (dist * valid).sum(-1)
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
