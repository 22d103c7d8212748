"""Text guidance blocks in the manner of NaLSuper (the project's reading; no code is public).

* :class:`TextConditionedAttention` (NaLSuper's TCM): image features attend to the word-level
  token embeddings of a sentence from a frozen CLIP text encoder (cross-attention).
* :class:`MultiLevelFusion` (NaLSuper's IFA): features of several levels, already conditioned
  on the text, are fused with channel attention, pixel attention and cross-layer attention.

Both start as identities (zero-initialised output projections), so switching them on in a
network does not change its initial function.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .sem_block import LayerNorm2d


class TextConditionedAttention(nn.Module):
    """Cross-attention from image pixels (queries) to text tokens (keys and values).

    ``out = x + W_o(softmax(W_q(LN(x)) W_k(LN(t))^T / sqrt(d)) W_v(LN(t)))``, multi-head, with the
    padding tokens masked out; ``W_o`` starts at zero (identity at initialisation). The cost is
    linear in the number of pixels (H * W * L for L tokens).

    Args:
        channels (int): C of the image features.
        text_dim (int): Width of the token embeddings (512 for CLIP ViT-B/16's text encoder).
        num_heads (int): Attention heads; must divide ``channels``. Default: 1.
        bias (bool): Biases of the projections. Default: False.
        zero_init (bool): Zero-initialise the output projection. Default: True.
    """

    def __init__(self, channels, text_dim, num_heads=1, bias=False, zero_init=True):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f'channels ({channels}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.norm_img = LayerNorm2d(channels)
        self.norm_text = nn.LayerNorm(text_dim)
        self.to_q = nn.Conv2d(channels, channels, 1, bias=bias)
        self.to_kv = nn.Linear(text_dim, channels * 2, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)
        if zero_init:
            nn.init.zeros_(self.project_out.weight)
            if self.project_out.bias is not None:
                nn.init.zeros_(self.project_out.bias)

    def forward(self, x, text, mask=None):
        """Condition ``x`` on the text.

        Args:
            x (Tensor): Image features, (B, C, H, W).
            text (Tensor): Token embeddings, (B or 1, L, text_dim).
            mask (Tensor | None): (B or 1, L) bool, True for real tokens. Default: all tokens.

        Returns:
            Tensor: (B, C, H, W).
        """
        b, c, h, w = x.shape
        heads, d = self.num_heads, c // self.num_heads
        text = text.to(x.dtype).expand(b, -1, -1)
        q = self.to_q(self.norm_img(x)).reshape(b, heads, d, h * w).transpose(-2, -1)  # (B, h, HW, d)
        k, v = self.to_kv(self.norm_text(text)).chunk(2, dim=-1)  # (B, L, C) each
        k = k.reshape(b, -1, heads, d).transpose(1, 2)  # (B, h, L, d)
        v = v.reshape(b, -1, heads, d).transpose(1, 2)
        attn_mask = None if mask is None else mask.to(torch.bool).expand(b, -1)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, HW, d)
        return x + self.project_out(out.transpose(-2, -1).reshape(b, c, h, w))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate: ``x * sigmoid(MLP(avgpool(x)))``."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)))


class PixelAttention(nn.Module):
    """Per-pixel gate: ``x * sigmoid(conv(relu(conv(x))))`` with a one-channel map."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.body = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(True), nn.Conv2d(hidden, 1, 3, 1, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.body(x))


class MultiLevelFusion(nn.Module):
    """Fuse features of several levels into the first (finest) one.

    Each level is projected to ``out_channels`` (1x1) and resized to the first level's size
    (bilinear), then gated by channel attention and pixel attention; cross-layer attention
    weighs the levels per pixel (softmax over levels of a 1x1 convolution of all of them); the
    weighted sum is projected (1x1, zero-initialised) and added to the first level:
    ``out = feats[0] + W_o(sum_l a_l * PA_l(CA_l(P_l(feats[l]))))``.

    Args:
        in_channels (list[int]): Channels of each level, finest first; the first must equal
            ``out_channels``.
        out_channels (int): Channels of the fused (first-level) features.
        reduction (int): Hidden width divisor of the attention gates. Default: 4.
        zero_init (bool): Zero-initialise the output projection. Default: True.
    """

    def __init__(self, in_channels, out_channels, reduction=4, zero_init=True):
        super().__init__()
        if in_channels[0] != out_channels:
            raise ValueError(f'the first level must have out_channels ({out_channels}) channels, got {in_channels[0]}')
        self.projs = nn.ModuleList([nn.Conv2d(c, out_channels, 1) for c in in_channels])
        self.channel_attns = nn.ModuleList([ChannelAttention(out_channels, reduction) for _ in in_channels])
        self.pixel_attns = nn.ModuleList([PixelAttention(out_channels, reduction) for _ in in_channels])
        self.layer_attn = nn.Conv2d(out_channels * len(in_channels), len(in_channels), 1)
        self.project_out = nn.Conv2d(out_channels, out_channels, 1)
        if zero_init:
            nn.init.zeros_(self.project_out.weight)
            nn.init.zeros_(self.project_out.bias)

    def forward(self, feats):
        """Fuse.

        Args:
            feats (list[Tensor]): Level l of shape (B, in_channels[l], H_l, W_l), finest first.

        Returns:
            Tensor: (B, out_channels, H_0, W_0).
        """
        size = feats[0].shape[-2:]
        levels = []
        for feat, proj, ca, pa in zip(feats, self.projs, self.channel_attns, self.pixel_attns):
            feat = proj(feat)
            if feat.shape[-2:] != size:
                feat = F.interpolate(feat, size=size, mode='bilinear', align_corners=False)
            levels.append(pa(ca(feat)))
        weights = self.layer_attn(torch.cat(levels, dim=1)).softmax(dim=1)  # (B, n_levels, H, W)
        fused = sum(weights[:, i : i + 1] * level for i, level in enumerate(levels))
        return feats[0] + self.project_out(fused)
