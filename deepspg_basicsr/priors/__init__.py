"""Frozen priors: the MMSegmentation semantic prior and the open_clip text/image prior."""

from .clip_prior import CLIPPrior, build_clip_prior
from .segmentation_prior import SegmentationPrior, build_segmentation_prior

__all__ = ['CLIPPrior', 'SegmentationPrior', 'build_clip_prior', 'build_segmentation_prior']
