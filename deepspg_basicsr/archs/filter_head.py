"""Where DeepSPG removes the noise that R0 = I / L amplifies: a per-pixel choice of smoothing.

The Retinex decomposition divides the input by an illumination map that can be as low as the floor
(0.05): in the darkest places R0 carries the sensor's noise multiplied up to 20 times. A residual head,
``R = R0 + conv(features)``, must cancel that noise pixel by pixel with a correction the decoder has
to reproduce exactly. The filter head gives the network a direct way instead: it smooths R0 with a
small bank of fixed Gaussian filters (the identity among them) and mixes them per pixel with weights
the decoder predicts (softmax), then adds the residual::

    R = sum_k w_k(features) * (G_k * R0) + conv(features)

so a dark, noisy flat region can take the widest filter and an edge the identity: the noise is removed
where it is born, at the cost of a few separable blurs of a 3-channel image.
"""

import torch.nn.functional as F
from torch import nn

from ..utils.gaussian import gaussian_taps


class FilterHead(nn.Module):
    """Reflectance head: a per-pixel mixture of Gaussian-smoothed R0, plus a residual.

    Args:
        channels (int): Width of the decoder features.
        sigmas (list[float]): Standard deviations of the filters; the identity is always the first
            filter. Default: [1.0, 2.0].
    """

    def __init__(self, channels, sigmas=(1.0, 2.0)):
        super().__init__()
        self.sigmas = [float(s) for s in sigmas]
        for i, s in enumerate(self.sigmas):
            self.register_buffer(f'taps{i}', gaussian_taps(s), persistent=False)
        self.weights = nn.Conv2d(channels, len(self.sigmas) + 1, 3, 1, 1)
        self.residual = nn.Conv2d(channels, 3, 3, 1, 1)

    def _blur(self, x, taps):
        r = taps.numel() // 2
        c = x.shape[1]
        x = F.pad(x, (r, r, r, r), mode='replicate')
        x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def forward(self, feat, refl0):
        """feat: decoder features (B, C, H, W); refl0: I / L (B, 3, H, W). Returns R (B, 3, H, W)."""
        w = self.weights(feat).softmax(dim=1)
        base = w[:, :1] * refl0
        for i in range(len(self.sigmas)):
            base = base + w[:, i + 1 : i + 2] * self._blur(refl0, getattr(self, f'taps{i}'))
        return base + self.residual(feat)
