"""The normalised 1-D Gaussian that the SSIM loss and DeepSPG's filter head both filter with."""

import math

import torch


def gaussian_taps(sigma, radius=None):
    """A normalised 1-D Gaussian of ``2 * radius + 1`` taps, (taps,) float32.

    Args:
        sigma (float): Standard deviation, in taps.
        radius (int | None): Taps on each side of the centre. Default: ``ceil(2 sigma)`` (at least 1).
    """
    if radius is None:
        radius = max(1, math.ceil(2.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()
