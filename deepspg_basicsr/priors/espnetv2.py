"""ESPNetv2 segmentation network as an MMSegmentation backbone + decode head.

An implementation of ESPNetv2 (Mehta, Rastegari, Shapiro, Hajishirzi, "ESPNetv2: A Light-weight,
Power Efficient, and General Purpose Convolutional Neural Network", CVPR 2019), written from the
paper and checked against the published segmentation checkpoints (``docs/DEEPSPG.md``), so that
those files load with no missing or unexpected key. Both classes register in MMSegmentation's
``MODELS`` registry, so an ordinary MMSegmentation-style config names them and
:class:`~deepspg_basicsr.priors.SegmentationPrior` builds, loads, freezes and folds them as it does
HRNet (configs in ``deepspg_basicsr/priors/configs/espnetv2/``).

Structure (width ``s = 2.0``; channels 32 / 128 / 256 / 512 at strides 2 / 4 / 8 / 16):

* encoder (:class:`DeepSPGESPNetv2`): a strided conv-BN-PReLU, then three down-sampling units
  (:class:`DownSampler`: a strided EESP unit concatenated with an average-pooled copy of its input,
  plus the image itself average-pooled to that stride, "input reinforcement"), each followed by
  EESP units (:class:`EESP`: grouped 1x1 reduce, ``k`` depth-wise dilated 3x3 branches summed
  hierarchically, grouped 1x1 expand, residual, PReLU). The ImageNet classifier levels of the
  classification network are not part of the segmentation network.
* decoder (:class:`DeepSPGESPNetv2Head`): efficient pyramid pooling (:class:`PyramidPool`) at
  stride 16, then three bottom-up steps (upsample x2, add the encoder level projected by a
  channel-gated grouped conv, BN-PReLU, pyramid pooling); the last one gives class scores at
  stride 2.

State-dict names follow the published files (their ``base_net.*`` keys are the backbone's, the
rest the head's: :func:`convert_published_checkpoint`).
"""

import math

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import nn

__all__ = ['DeepSPGESPNetv2', 'DeepSPGESPNetv2Head', 'convert_published_checkpoint', 'ESPNETV2_WIDTHS']

#: Encoder channels at strides 2, 4, 8, 16 for each published width ``s``.
ESPNETV2_WIDTHS = {
    0.5: (16, 32, 64, 128),
    1.0: (32, 64, 128, 256),
    1.25: (32, 80, 160, 320),
    1.5: (32, 96, 192, 384),
    2.0: (32, 128, 256, 512),
}
#: Dilation of a 3x3 kernel covering a receptive field of ``k`` pixels.
_DILATION_OF_FIELD = {3: 1, 5: 2, 7: 3, 9: 4, 11: 5, 13: 6, 15: 7, 17: 8}


class ConvBNAct(nn.Module):
    """conv - BN - PReLU (PReLU optional), padded to keep the size at stride 1.

    ``foldable_pairs`` names the (conv, BN) pair :func:`~deepspg_basicsr.deploy.batchnorm_fold.fold_batchnorm` may fold:
    the forward applies ``bn`` straight after ``conv``.
    """

    foldable_pairs = (('conv', 'bn'),)

    def __init__(self, in_ch, out_ch, kernel, stride=1, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.PReLU(out_ch) if act else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)


class BNAct(nn.Module):
    """BN - PReLU (encoder naming: ``bn``, ``act``)."""

    def __init__(self, channels):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.PReLU(channels)

    def forward(self, x):
        return self.act(self.bn(x))


class DepthwiseDilated(nn.Module):
    """Depth-wise 3x3 convolution with dilation ``d`` (and ``stride``), size kept at stride 1."""

    def __init__(self, channels, stride, dilation):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride, dilation, dilation, groups=channels, bias=False)

    def forward(self, x):
        return self.conv(x)


class EESP(nn.Module):
    """Extremely efficient spatial pyramid unit: reduce, split, transform, merge.

    Args:
        in_ch (int): Input channels.
        out_ch (int): Output channels (a multiple of ``k``).
        stride (int): 1, or 2 inside a :class:`DownSampler` (then no residual and no activation:
            the down-sampler adds its own).
        k (int): Parallel depth-wise branches. Default: 4.
        r_lim (int): Largest receptive field of a branch; larger ones fall back to 3x3.
    """

    def __init__(self, in_ch, out_ch, stride=1, k=4, r_lim=7):
        super().__init__()
        n = out_ch // k
        if n * k != out_ch:
            raise ValueError(f'EESP: out_ch {out_ch} is not a multiple of k={k}')
        self.stride = stride
        self.proj_1x1 = ConvBNAct(in_ch, n, 1, groups=k)
        fields = sorted(3 + 2 * i if 3 + 2 * i <= r_lim else 3 for i in range(k))
        self.spp_dw = nn.ModuleList(DepthwiseDilated(n, stride, _DILATION_OF_FIELD[f]) for f in fields)
        self.conv_1x1_exp = ConvBNAct(out_ch, out_ch, 1, groups=k, act=False)
        self.br_after_cat = BNAct(out_ch)
        self.module_act = nn.PReLU(out_ch)

    def forward(self, x):
        """x: (B, in_ch, H, W) -> (B, out_ch, H / stride, W / stride)."""
        reduced = self.proj_1x1(x)
        branches = [self.spp_dw[0](reduced)]
        for conv in self.spp_dw[1:]:  # hierarchical feature fusion: each branch adds the previous
            branches.append(conv(reduced) + branches[-1])
        out = self.conv_1x1_exp(self.br_after_cat(torch.cat(branches, 1)))
        if self.stride == 2:
            return out
        if out.shape == x.shape:
            out = out + x
        return self.module_act(out)


def _avg_pool_half(x):
    """3x3 average pooling at stride 2, padding 1 (zeros counted): size ``ceil(n / 2)``."""
    return F.avg_pool2d(x, 3, 2, 1)


class DownSampler(nn.Module):
    """Halve the resolution: [avg-pooled input, strided EESP] concatenated, plus the image itself
    average-pooled to the output stride and projected (input reinforcement), then PReLU.

    Args:
        in_ch (int): Input channels.
        out_ch (int): Output channels (> ``in_ch``).
        k (int): EESP branches.
        r_lim (int): EESP receptive-field limit.
    """

    def __init__(self, in_ch, out_ch, k=4, r_lim=9):
        super().__init__()
        self.eesp = EESP(in_ch, out_ch - in_ch, stride=2, k=k, r_lim=r_lim)
        self.inp_reinf = nn.Sequential(ConvBNAct(3, 3, 3), ConvBNAct(3, out_ch, 1, act=False))
        self.act = nn.PReLU(out_ch)

    def forward(self, x, image):
        """x: (B, in_ch, H, W); image: the input image pooled to (B, 3, ceil(H / 2), ceil(W / 2))."""
        out = torch.cat([_avg_pool_half(x), self.eesp(x)], 1)
        return self.act(out + self.inp_reinf(image))


@MODELS.register_module()
class DeepSPGESPNetv2(nn.Module):
    """ESPNetv2 encoder (segmentation variant: the ImageNet classifier levels removed).

    Args:
        s (float): Width multiplier, one of :data:`ESPNETV2_WIDTHS`. Default: 2.0.
        k (int): EESP branches. Default: 4.
        init_cfg: Ignored (MMSegmentation passes it).

    Forward: normalised RGB (B, 3, H, W) -> list of four maps at strides 2, 4, 8, 16 with
    ``ESPNETV2_WIDTHS[s]`` channels, each of size ``ceil`` of the input halved that many times.
    """

    def __init__(self, s=2.0, k=4, init_cfg=None):
        super().__init__()
        if s not in ESPNETV2_WIDTHS:
            raise ValueError(f'ESPNetv2 width s={s} not one of {sorted(ESPNETV2_WIDTHS)}')
        c1, c2, c3, c4 = ESPNETV2_WIDTHS[s]
        self.out_channels = [c1, c2, c3, c4]
        self.level1 = ConvBNAct(3, c1, 3, stride=2)
        self.level2_0 = DownSampler(c1, c2, k=k, r_lim=13)
        self.level3_0 = DownSampler(c2, c3, k=k, r_lim=11)
        self.level3 = nn.ModuleList(EESP(c3, c3, k=k, r_lim=9) for _ in range(3))
        self.level4_0 = DownSampler(c3, c4, k=k, r_lim=9)
        self.level4 = nn.ModuleList(EESP(c4, c4, k=k, r_lim=7) for _ in range(7))

    def forward(self, x):
        image = _avg_pool_half(x)
        out1 = self.level1(x)
        image = _avg_pool_half(image)
        out2 = self.level2_0(out1, image)
        image = _avg_pool_half(image)
        out3 = self.level3_0(out2, image)
        for unit in self.level3:
            out3 = unit(out3)
        image = _avg_pool_half(image)
        out4 = self.level4_0(out3, image)
        for unit in self.level4:
            out4 = unit(out4)
        return [out1, out2, out3, out4]


class SeqConvBNAct(nn.Module):
    """conv - BN - PReLU in one ``nn.Sequential`` named ``cbr`` (decoder naming)."""

    def __init__(self, in_ch, out_ch, kernel, groups=1):
        super().__init__()
        self.cbr = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel, 1, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.PReLU(out_ch),
        )

    def forward(self, x):
        return self.cbr(x)


class SeqBNAct(nn.Module):
    """BN - PReLU in one ``nn.Sequential`` named ``br`` (decoder naming)."""

    def __init__(self, channels):
        super().__init__()
        self.br = nn.Sequential(nn.BatchNorm2d(channels), nn.PReLU(channels))

    def forward(self, x):
        return self.br(x)


class ChannelShuffle(nn.Module):
    """Interleave ``groups`` channel groups: (g, c) -> (c, g)."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        b, c, h, w = x.shape
        return x.reshape(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class PyramidPool(nn.Module):
    """Efficient pyramid pooling: project, then one depth-wise 3x3 per scale (2, 1.5, 1, 0.5, 0.1
    of the map's size, at least 5 pixels; the result resampled back), BN-PReLU over all scales,
    channel shuffle, grouped 3x3, 1x1 to ``out_ch`` (then BN-PReLU unless ``last``).

    Args:
        in_ch (int): Input channels.
        proj_ch (int): Channels per scale.
        out_ch (int): Output channels.
        last (bool): The classifier layer: a biased 1x1 and no BN-PReLU after it.
    """

    scales = (2.0, 1.5, 1.0, 0.5, 0.1)

    def __init__(self, in_ch, proj_ch, out_ch, last=False):
        super().__init__()
        n = len(self.scales)
        self.projection_layer = SeqConvBNAct(in_ch, proj_ch, 1)
        self.stages = nn.ModuleList(nn.Conv2d(proj_ch, proj_ch, 3, 1, 1, groups=proj_ch, bias=False) for _ in range(n))
        self.merge_layer = nn.Sequential(
            SeqBNAct(proj_ch * n),
            ChannelShuffle(n),
            SeqConvBNAct(proj_ch * n, proj_ch, 3, groups=proj_ch),
            nn.Conv2d(proj_ch, out_ch, 1, bias=last),
        )
        self.br = None if last else SeqBNAct(out_ch)

    def forward(self, x):
        x = self.projection_layer(x)
        h, w = x.shape[-2:]
        outs = []
        for scale, conv in zip(self.scales, self.stages):
            size = (max(5, math.ceil(h * scale)), max(5, math.ceil(w * scale)))
            if scale > 1.0:
                y = F.interpolate(x, size=size, mode='bilinear', align_corners=True)
                y = F.adaptive_avg_pool2d(conv(y), (h, w))
            elif scale < 1.0:
                y = conv(F.adaptive_avg_pool2d(x, size))
                y = F.interpolate(y, size=(h, w), mode='bilinear', align_corners=True)
            else:
                y = conv(x)
            outs.append(y)
        out = self.merge_layer(torch.cat(outs, 1))
        return out if self.br is None else self.br(out)


class GatedProjection(nn.Module):
    """Project an encoder level to the decoder width: a grouped 3x3 conv-BN-PReLU (groups =
    gcd of the widths) scaled per channel by a sigmoid gate of the globally pooled input."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.wt_layer = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.Sigmoid())
        self.expansion_layer = SeqConvBNAct(in_ch, out_ch, 3, groups=math.gcd(in_ch, out_ch))

    def forward(self, x):
        return self.expansion_layer(x) * self.wt_layer(x)


@MODELS.register_module()
class DeepSPGESPNetv2Head(nn.Module):
    """ESPNetv2 segmentation decoder: class scores at stride 2 from the encoder's four levels.

    Args:
        in_channels (list[int]): Encoder channels at strides 2, 4, 8, 16.
        num_classes (int): Output classes (21 for PASCAL VOC, 20 for the Cityscapes model).
        dec_channels (int): Base decoder width (16 in the published PASCAL / Cityscapes models).
            Default: 16.
        init_cfg: Ignored (MMSegmentation passes it).

    Forward: the encoder's list -> logits (B, num_classes, ceil(H / 2), ceil(W / 2)).
    """

    def __init__(self, in_channels, num_classes, dec_channels=16, init_cfg=None):
        super().__init__()
        c1, c2, c3, c4 = in_channels
        d = [4 * dec_channels, 3 * dec_channels, 2 * dec_channels]
        proj = min(num_classes // 2, dec_channels)
        self.num_classes = num_classes
        self.bu_dec_l1 = PyramidPool(c4, proj, d[0])
        self.bu_dec_l2 = PyramidPool(d[0], proj, d[1])
        self.bu_dec_l3 = PyramidPool(d[1], proj, d[2])
        self.bu_dec_l4 = PyramidPool(d[2], proj, num_classes, last=True)
        self.merge_enc_dec_l2 = GatedProjection(c3, d[0])
        self.merge_enc_dec_l3 = GatedProjection(c2, d[1])
        self.merge_enc_dec_l4 = GatedProjection(c1, d[2])
        self.bu_br_l2 = nn.Sequential(nn.BatchNorm2d(d[0]), nn.PReLU(d[0]))
        self.bu_br_l3 = nn.Sequential(nn.BatchNorm2d(d[1]), nn.PReLU(d[1]))
        self.bu_br_l4 = nn.Sequential(nn.BatchNorm2d(d[2]), nn.PReLU(d[2]))

    @staticmethod
    def _up(x, like):
        """Upsample to ``like``'s size, bilinear with corners aligned: x2 where that size is even
        (the published network's step, which assumes sizes divisible by 16), and for an odd size
        ``2n - 1`` still output pixel ``i`` at input ``i / 2``, where a stride-2 layer put it."""
        return F.interpolate(x, size=like.shape[-2:], mode='bilinear', align_corners=True)

    def forward(self, feats):
        out1, out2, out3, out4 = feats
        x = self.bu_dec_l1(out4)
        steps = (
            (out3, self.merge_enc_dec_l2, self.bu_br_l2, self.bu_dec_l2),
            (out2, self.merge_enc_dec_l3, self.bu_br_l3, self.bu_dec_l3),
            (out1, self.merge_enc_dec_l4, self.bu_br_l4, self.bu_dec_l4),
        )
        for skip, project, br, pool in steps:
            x = pool(br(project(skip) + self._up(x, skip)))
        return x


def convert_published_checkpoint(state):
    """Map a published ESPNetv2 segmentation state dict (``base_net.*`` encoder keys, decoder
    keys at the top level) to MMSegmentation's ``backbone.*`` / ``decode_head.*`` names.

    Returns None when ``state`` is not in that layout (no ``base_net.`` key).
    """
    if not any(k.startswith('base_net.') for k in state):
        return None
    out = {}
    for key, value in state.items():
        if key.startswith('base_net.'):
            out['backbone.' + key[len('base_net.') :]] = value
        else:
            out['decode_head.' + key] = value
    return out
