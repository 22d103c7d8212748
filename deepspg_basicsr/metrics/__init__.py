"""Subpackage; modules are imported explicitly below for registration."""

from .llie_psnr_ssim import calculate_niqe_llie, calculate_psnr_llie, calculate_ssim_llie, gt_mean_correct

__all__ = ['calculate_niqe_llie', 'calculate_psnr_llie', 'calculate_ssim_llie', 'gt_mean_correct']

# issue 11: zero-reference training
from .brightness import calculate_brightness_llie  # noqa: E402

__all__ += ['calculate_brightness_llie']
