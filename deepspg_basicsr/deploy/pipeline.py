"""The whole DeepSPG inference pipeline as one module with shape-generic padding (for ONNX export).

:class:`DeepSPGPipeline` computes what ``DeepSPGModel.enhance(net, x)`` computes: the
segmentation prior on the input (at ``prior.seg_scale``), the enhancer, and with coarse-to-fine
the prior on the clamped coarse result (at ``prior.c2f_seg_scale``) and the decoder again; the
padding to the network's multiple and the crop back are inside. Unlike the network's own
:func:`~deepspg_basicsr.archs.deepspg_arch.pad_to_multiple` (which branches on Python ints, so
a trace would bake in the export size) the padding here is always a reflect pad whose amounts
are computed from the input's shape, so one exported graph serves every size.

:class:`DeepSPGEnhancerOnly` is the enhancer alone, fed with the prior's features (one pass,
no coarse-to-fine), for runtimes that run the prior elsewhere.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .batchnorm_fold import fold_batchnorm, has_foldable_batchnorm

__all__ = ['ExportError', 'DeepSPGPipeline', 'DeepSPGEnhancerOnly', 'check_exportable', 'reflect_pad_to_multiple']


class ExportError(ValueError):
    """A network or an option the export cannot handle (the message names the option)."""


def reflect_pad_to_multiple(x, multiple):
    """Reflect-pad the bottom / right of (B, C, H, W) to multiples of ``multiple``, without
    branching on the size (a pad of 0 where it is already a multiple). Needs H, W >= multiple."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (multiple - w % multiple) % multiple, 0, (multiple - h % multiple) % multiple), mode='reflect')


def check_exportable(net, opt):
    """Raise :class:`ExportError` naming the option when ``net`` / ``opt`` cannot be exported.

    Args:
        net (nn.Module): The bare enhancer.
        opt (dict): The option file's contents.
    """
    name = type(net).__name__
    if name != 'DeepSPG':
        raise ExportError(
            f'network_g.type {name} cannot be exported yet: the export covers DeepSPG only '
            '(SemanticGuidedWrapper inserts its SEM blocks with forward hooks around an arbitrary host)'
        )
    if getattr(net, 'text_guidance', False):
        raise ExportError(
            'network_g.text_guidance: true cannot be exported yet (the CLIP token embeddings of '
            'prior.guidance_prompt would have to become a constant input); export a network without it'
        )
    perf = opt.get('perf') or {}
    if perf.get('compile'):
        raise ExportError('perf.compile cannot be exported: set it to false (the export traces the eager modules)')
    amp = perf.get('amp')
    if amp not in (None, False, 'none'):
        raise ExportError(
            f'perf.amp: {amp} cannot be exported: the ONNX model is float32 (use the onnxruntime levers instead)'
        )


class DeepSPGPipeline(nn.Module):
    """Prior + DeepSPG enhancer (+ coarse-to-fine), padding and crop inside.

    Args:
        net (nn.Module): A :class:`~deepspg_basicsr.archs.DeepSPG` (eval mode).
        prior (nn.Module): Its :class:`~deepspg_basicsr.priors.SegmentationPrior`.
        branches (list[int]): Prior branches fed to the SEM scales (``prior.seg_branches``).
        seg_scale (float): The prior runs on the input resized by this factor. Default: 1.0.
        c2f_seg_scale (float | None): The same for the C2F pass; None: ``seg_scale``.
        fold_bn (bool): Fold the prior's BatchNorms into its convolutions (on a copy, made only
            when there is something to fold; same
            function up to float rounding, as ONNX Runtime's own Conv+BN fusion). Default: True.
        channels_last (bool | str): Run the enhancer on a channels-last (NHWC) copy of the padded
            input when the pipeline runs eagerly on the CPU (never while it is being exported:
            the ONNX graph is the same either way). Same function up to float rounding (as
            ``perf.channels_last: auto`` of ``DeepSPGModel``, which does the same); ``auto``: on
            the CPU only. Default: ``auto``.

    Shapes: ``forward(x)`` with ``x`` (B, 3, H, W) RGB in [0, 1], H, W >= 4, returns the
    enhanced image, the illumination and the reflectance, each (B, 3, H, W), not clamped (as
    ``DeepSPG.forward(..., return_aux=True)``).
    """

    def __init__(self, net, prior, branches, seg_scale=1.0, c2f_seg_scale=None, fold_bn=True, channels_last='auto'):
        super().__init__()
        self.net = net
        if fold_bn and has_foldable_batchnorm(prior):  # a DeepSPGModel's prior is folded already
            prior = copy.deepcopy(prior)
            fold_batchnorm(prior)
        self.prior = prior
        self.branches = [int(b) for b in branches]
        self.seg_scale = float(seg_scale)
        self.c2f_seg_scale = self.seg_scale if c2f_seg_scale is None else float(c2f_seg_scale)
        self.multiple = int(getattr(net, 'down_factor', 1))
        self.channels_last = channels_last

    def _enhancer_input(self, x):
        """``x`` in the layout the enhancer runs fastest in (see ``channels_last``)."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return x
        on = self.channels_last if self.channels_last != 'auto' else x.device.type == 'cpu'
        return x.contiguous(memory_format=torch.channels_last) if on else x

    def features(self, x, scale):
        """The prior's features of ``x`` at ``scale`` (as ``DeepSPGModel.sem_features``)."""
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False, antialias=scale < 1)
        return self.prior(x, return_logits=False, branches=self.branches)['feats']

    def forward(self, x):
        h, w = x.shape[-2:]
        net = self.net
        enc = net.encode(self._enhancer_input(reflect_pad_to_multiple(x, self.multiple)))  # its own pad: a no-op
        feats = self.features(x, self.seg_scale)
        if net.c2f and net.use_semantics:
            coarse = net.decode(enc, feats)['out'][..., :h, :w]
            feats = self.features(coarse.clamp(0, 1), self.c2f_seg_scale)
        res = net.decode(enc, feats)
        return tuple(res[k][..., :h, :w].contiguous() for k in ('out', 'illumination', 'reflectance'))


class DeepSPGEnhancerOnly(nn.Module):
    """One DeepSPG pass given the prior's features (no prior, no coarse-to-fine).

    ``forward(x, f0, f1, f2)``: ``x`` (B, 3, H, W) in [0, 1], ``f_i`` the prior branches of the
    SEM scales 1, 1/2, 1/4 (any sizes; None for a network without semantics); returns ``out``,
    ``illumination``, ``reflectance``.
    """

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.multiple = int(getattr(net, 'down_factor', 1))

    def forward(self, x, f0=None, f1=None, f2=None):
        h, w = x.shape[-2:]
        feats = None if f0 is None else [f0, f1, f2]
        res = self.net.decode(self.net.encode(reflect_pad_to_multiple(x, self.multiple)), feats)
        return tuple(res[k][..., :h, :w] for k in ('out', 'illumination', 'reflectance'))
