"""Semantic-aware Embedding Module (SEM), reusable in any network.

DeepSPG (eqs. 7-8) and SKF use the same block: image features attend to semantic features
with a channel ("transposed") attention, then a gated feed-forward network refines them::

    A   = softmax(W_k(F_i) x W_q(F_s) / tau)      # (C/h x C/h) per head
    F_o = FFN(W_v(F_i) x A + F_i)

The query comes from the semantic features, keys and values from the image features.
"""

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map, with affine parameters.

    Args:
        channels (int): C.
        eps (float): Added to the variance. Default: 1e-6.
    """

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GatedFeedForward(nn.Module):
    """Gated FFN: two streams, each its own 1x1 + depth-wise 3x3 projection and GELU, multiplied,
    then a 1x1 projection back.

    Args:
        channels (int): Input and output channels.
        expansion (float): Hidden width factor. Default: 2.
        bias (bool): Convolution biases. Default: False.
    """

    def __init__(self, channels, expansion=2.0, bias=False):
        super().__init__()
        hidden = max(1, int(round(channels * expansion)))
        self.project_in = nn.Conv2d(channels, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x):
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * F.gelu(b))


class SemanticAttention(nn.Module):
    """Multi-head channel attention with semantic queries and image keys/values.

    Each head attends across its C/h channels: q and k are L2-normalised over the pixels and
    scaled by a learnable per-head temperature, so the cost is linear in the number of pixels.

    Args:
        channels (int): C of both inputs.
        num_heads (int): Heads; must divide C. Default: 1.
        bias (bool): Convolution biases. Default: False.
    """

    def __init__(self, channels, num_heads=1, bias=False):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f'channels ({channels}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.to_q = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=bias),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=bias),
        )
        self.to_kv = nn.Sequential(
            nn.Conv2d(channels, channels * 2, 1, bias=bias),
            nn.Conv2d(channels * 2, channels * 2, 3, 1, 1, groups=channels * 2, bias=bias),
        )
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x, sem):
        """x: image features (B, C, H, W); sem: semantic features (B, C, H, W). Returns (B, C, H, W)."""
        b, c, h, w = x.shape
        q = self.to_q(sem).reshape(b, self.num_heads, c // self.num_heads, h * w)
        k, v = self.to_kv(x).chunk(2, dim=1)
        k = k.reshape(b, self.num_heads, c // self.num_heads, h * w)
        v = v.reshape(b, self.num_heads, c // self.num_heads, h * w)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class SemanticEmbeddingModule(nn.Module):
    """SEM: fuse a semantic feature map of any size into an image feature map.

    Two choices differ from SKF's published code, deliberately:

    * The semantic map is resized to the image features with **bilinear** interpolation, not
      nearest-neighbour: the prior's features are 4-32x coarser than the image features, and
      nearest-neighbour upsampling stamps blocky edges into the attention queries; bilinear is
      smooth and has gradients everywhere.
    * The attention residual is added to the **un-normalised** image features, as in a
      pre-norm transformer block. Adding it to the normalised features (as SKF's code does)
      would re-scale the host network's features at every insertion point, so the block could
      not start as an identity and its effect would depend on the host's feature statistics.

    One addition to the published block, the **spatial path** (``spatial=True``, the default):
    after the attention, the projected semantic features ``s`` modulate the image features per
    pixel, ``x * (1 + scale(s)) + shift(s)`` (a 1x1 convolution giving both, as SFT does with
    segmentation maps). ``s`` is taken before the LayerNorm, which would divide out each pixel's
    magnitude (measured: a lower training loss for the oracle without it). The published block
    passes the semantics through the channel attention alone: its output at a pixel is a mix of
    the image's own value channels there, with weights that are one (C/h x C/h) matrix per head
    for the whole image, so what the prior says about a *place* cannot reach that place. Measured
    (``deepspg-bench proof``, ``docs/DEEPSPG.md``): without the spatial path, a prior run
    on the ground truth (an oracle) did no better than no semantics at all. The modulation
    starts at zero (an identity), whatever ``zero_init``.

    The resize and the 1x1 projection of the semantic map commute (bilinear weights sum to one),
    so the block projects first when ``sem_channels >= channels``: it resizes C channels instead of
    Cs and runs the projection at the semantic map's resolution (for DeepSPG at full resolution 16
    instead of 48 channels, the 1x1 convolution on 1/16 of the pixels). Same function up to float
    rounding (``tests/test_sem.py``).

    With ``zero_init=True`` the two output projections start at zero, so the module is an exact
    identity until trained: it can be inserted into a trained network without changing it.

    Args:
        channels (int): C of the image features.
        sem_channels (int): Cs of the semantic features (e.g. 48 / 96 / 192 for HRNet-W48).
        num_heads (int): Attention heads. Default: 1.
        ffn_expansion (float): Hidden width factor of the gated FFN. Default: 2.
        bias (bool): Convolution biases. Default: False.
        zero_init (bool): Start as an identity. Default: False.
        spatial (bool): The spatial path (per-pixel modulation by the semantics). Default: True.
    """

    def __init__(
        self, channels, sem_channels, num_heads=1, ffn_expansion=2.0, bias=False, zero_init=False, spatial=True
    ):
        super().__init__()
        self.sem_proj = nn.Conv2d(sem_channels, channels, 1, bias=bias)
        # project before resizing when that resizes fewer channels (see forward)
        self.project_first = sem_channels >= channels
        self.norm_img = LayerNorm2d(channels)
        self.norm_sem = LayerNorm2d(channels)
        self.attn = SemanticAttention(channels, num_heads, bias)
        self.norm_ffn = LayerNorm2d(channels)
        self.ffn = GatedFeedForward(channels, ffn_expansion, bias)
        self.spatial = spatial
        if spatial:
            self.modulation = nn.Conv2d(channels, channels * 2, 1)
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)
        if zero_init:
            for conv in (self.attn.project_out, self.ffn.project_out):
                nn.init.zeros_(conv.weight)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)

    def forward(self, x, sem):
        """Fuse ``sem`` into ``x``.

        Args:
            x (Tensor): Image features, shape (B, C, H, W).
            sem (Tensor): Semantic features, shape (B, Cs, h, w), any h and w.

        Returns:
            Tensor: Shape (B, C, H, W).
        """
        sem = sem.to(x.dtype)
        if sem.shape[-2:] == x.shape[-2:]:
            sem = self.sem_proj(sem)
        elif self.project_first:
            # Bilinear resampling (align_corners=False, no antialias) is a per-channel linear map
            # whose weights sum to one, so it commutes with a 1x1 convolution and its bias: the same
            # function up to float rounding, with the resize on C instead of Cs channels and the
            # projection at the semantic map's (coarser) resolution.
            sem = F.interpolate(self.sem_proj(sem), size=x.shape[-2:], mode='bilinear', align_corners=False)
        else:
            sem = self.sem_proj(F.interpolate(sem, size=x.shape[-2:], mode='bilinear', align_corners=False))
        x = x + self.attn(self.norm_img(x), self.norm_sem(sem))
        if self.spatial:
            scale, shift = self.modulation(sem).chunk(2, dim=1)
            x = x * (1 + scale) + shift
        return x + self.ffn(self.norm_ffn(x))
