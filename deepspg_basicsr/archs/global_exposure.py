"""A photo-wide exposure and colour correction chosen from the network's deepest features.

Most of the plain-PSNR error of every network in the project's proof is the photo-wide exposure guess
(docs/DEEPSPG.md, "Where the structure goes": GT-mean PSNR is 5-6 dB above plain PSNR), and the
illumination estimator that sets it sees 9 pixels plus the image-wide mean of those local features. The
deepest level of the U-Net sees the whole scene at 1/4 scale. This module pools those features over the
image, adds the log of the current output's mean per channel, and predicts one log-gain per colour
channel::

    out = out * exp(mlp([mean(feat), log(mean(out) + eps)]))

DeepSPG feeds it the deepest encoder level by default (``network_g.exposure_source``): reading the
decoder's, after SEM, let the semantic prior choose the photo-wide gain, which generalised worse at
1,000 iterations (docs/DEEPSPG.md, section 4).

The last layer starts at zero, so a new network starts as without the module. One gain per image and
channel cannot add or remove noise or texture; it moves the whole photo's exposure and white balance.
"""

import torch
import torch.nn.functional as F
from torch import nn


class GlobalExposure(nn.Module):
    """Per-image, per-channel gain from pooled decoder features.

    Args:
        channels (int): Width of the decoder features pooled (the deepest level's, 4 x num_feat).
        hidden (int): Width of the hidden layer. Default: 32.
        eps (float): Added to the output's mean before the log. Default: 1e-3.
        extra (int): Number of per-image statistics given besides the features (``extra`` in
            :meth:`log_gain`; DeepSPG's ``input_level`` gives 1). Default: 0.
    """

    def __init__(self, channels, hidden=32, eps=1e-3, extra=0):
        super().__init__()
        self.eps = eps
        self.extra = int(extra)
        self.fc1 = nn.Linear(channels + 3 + self.extra, hidden)
        self.fc2 = nn.Linear(hidden, 3)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def log_gain(self, feat, out, extra=None):
        """Per-image log-gains.

        Args:
            feat (Tensor): (B, channels, h, w) features, pooled over the image.
            out (Tensor): (B, 3, H, W) the output before the gain.
            extra (Tensor | None): (B, extra) further statistics; needed when ``extra`` > 0.

        Returns:
            Tensor: (B, 3) log-gains.
        """
        parts = [feat.mean(dim=(2, 3)), torch.log(out.mean(dim=(2, 3)).clamp(min=0) + self.eps)]
        if self.extra:
            if extra is None or extra.shape[-1] != self.extra:
                raise ValueError(f'GlobalExposure built with extra={self.extra} needs (B, {self.extra}) statistics')
            parts.append(extra)
        return self.fc2(F.leaky_relu(self.fc1(torch.cat(parts, dim=1)), 0.2))

    def forward(self, feat, out, extra=None):
        """Returns ``out`` (B, 3, H, W) times the predicted gain of each image and channel."""
        return out * self.log_gain(feat, out, extra).exp()[:, :, None, None]
