"""Exposure control loss for zero-reference training (Zero-DCE's L_exp)."""

import torch
import torch.nn.functional as F
from basicsr.losses.loss_util import weight_reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction

_DISTANCES = ('l1', 'l2')


@LOSS_REGISTRY.register()
class SPGExposureLoss(nn.Module):
    """Distance of local mean brightness to a target exposure level.

    Zero-DCE (Guo et al., "Zero-Reference Deep Curve Estimation for Low-Light Image
    Enhancement", CVPR 2020), exposure control loss: the output is turned grey (mean of the
    RGB channels), averaged over non-overlapping ``patch_size`` x ``patch_size`` patches
    (Zero-DCE: 16), and each patch mean Y_k is pulled towards the level E (Zero-DCE: 0.6):
    ``|Y_k - E|`` (the paper's formula, ``distance: l1``) or ``(Y_k - E)^2`` (``l2``). Rows and
    columns that do not fill a whole patch are left out. This is the project's implementation.

    ``target_level: ref`` takes E from a set of normal-light reference images: the model passes
    their mean grey level (``UnpairedLLIEDataset``'s ``dataroot_ref``) as ``target``.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per patch, (B, 1, H // p, W // p)) | 'mean' | 'sum'. Default: 'mean'.
        patch_size (int): Patch side p. Default: 16.
        target_level (float | str): E in [0, 1], or 'ref'. Default: 0.6.
        distance (str): 'l1' | 'l2'. Default: 'l1'.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', patch_size=16, target_level=0.6, distance='l1'):
        super().__init__()
        check_reduction(reduction)
        if distance not in _DISTANCES:
            raise ValueError(f'distance must be one of {list(_DISTANCES)}, got {distance!r}')
        if target_level != 'ref' and not 0.0 <= float(target_level) <= 1.0:
            raise ValueError(f"target_level must be in [0, 1] or 'ref', got {target_level!r}")
        if int(patch_size) < 1:
            raise ValueError(f'patch_size must be >= 1, got {patch_size}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.patch_size = int(patch_size)
        self.target_level = target_level
        self.distance = distance

    @property
    def needs_reference(self):
        """Whether ``forward`` needs ``target`` (``target_level: ref``)."""
        return self.target_level == 'ref'

    def forward(self, pred, target=None):
        """pred: (B, 3, H, W), H and W >= patch_size; target: the level E as a float or a
        tensor broadcastable to (B, 1, 1, 1); None: ``target_level``."""
        if target is None:
            if self.needs_reference:
                raise ValueError("SPGExposureLoss with target_level 'ref' needs the reference level (target)")
            target = float(self.target_level)
        if min(pred.shape[-2:]) < self.patch_size:
            raise ValueError(
                f'SPGExposureLoss: image {tuple(pred.shape[-2:])} is smaller than patch_size {self.patch_size}'
            )
        means = F.avg_pool2d(pred.mean(dim=1, keepdim=True), self.patch_size)
        diff = means - torch.as_tensor(target, dtype=means.dtype, device=means.device)
        loss = diff.abs() if self.distance == 'l1' else diff.pow(2)
        return self.loss_weight * weight_reduce_loss(loss, None, self.reduction)
