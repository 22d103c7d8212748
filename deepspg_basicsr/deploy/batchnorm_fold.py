"""BatchNorm folded into convolutions, for a frozen prior (the model's default and the export's).

:func:`fold_batchnorm`: every ``Conv2d`` followed directly by an eval-mode ``BatchNorm2d`` becomes
one convolution (``w' = w * g / sqrt(var + eps)``, ``b' = (b - mean) * g / sqrt(var + eps) +
beta``), the BatchNorm an ``Identity``. Same function up to float rounding (measured in
``docs/BENCHMARKS.md``); state-dict keys change, so fold a copy after loading. Used by
``DeepSPGModel`` (``perf.fold_prior_bn``) and :class:`~deepspg_basicsr.deploy.pipeline.DeepSPGPipeline`.
"""

import torch
from torch import nn

__all__ = ['fold_batchnorm', 'has_foldable_batchnorm']


def _fold_pair(conv, bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    folded.requires_grad_(conv.weight.requires_grad)
    return folded


def _foldable(conv, bn):
    return (
        type(conv) is nn.Conv2d
        and isinstance(bn, nn.BatchNorm2d)
        and bn.track_running_stats
        and bn.affine
        and bn.num_features == conv.out_channels
    )


def _foldable_pairs(module):
    """Yield ``(parent, conv_name, bn_name)`` for each (Conv2d, BatchNorm2d) pair that
    :func:`fold_batchnorm` folds, reading the module's state as each pair is reached."""
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for a, b in zip(names, names[1:]):
                if _foldable(parent._modules[a], parent._modules[b]):
                    yield parent, a, b
            continue
        for conv_name, bn_name in getattr(parent, 'foldable_pairs', ()):  # a module's own declaration
            conv, bn = parent._modules.get(conv_name), parent._modules.get(bn_name)
            if conv is not None and bn is not None and _foldable(conv, bn):
                yield parent, conv_name, bn_name
        for k in range(1, 4):
            conv = parent._modules.get(f'conv{k}')
            bn_name = getattr(parent, f'norm{k}_name', f'norm{k}')
            bn = parent._modules.get(bn_name) if isinstance(bn_name, str) else None
            if conv is not None and bn is not None and _foldable(conv, bn):
                yield parent, f'conv{k}', bn_name


def has_foldable_batchnorm(module):
    """Whether :func:`fold_batchnorm` would fold anything in ``module`` (it changes nothing)."""
    return next(_foldable_pairs(module), None) is not None


def fold_batchnorm(module):
    """Fold each eval-mode BatchNorm2d into the Conv2d that feeds it, in place.

    Pairs recognised: consecutive children of an ``nn.Sequential`` (conv, bn), attribute
    pairs ``convK`` / ``normK`` (or the BN named by ``normK_name``), the layout of ResNet-style
    blocks (MMSegmentation's ``BasicBlock`` / ``Bottleneck`` and HRNet's stem), whose forward
    applies ``normK`` straight after ``convK``, and the attribute pairs a module lists in its
    ``foldable_pairs`` (ESPNetv2's ``conv`` / ``bn``). Only for a module in eval mode (running
    statistics), as a frozen prior is.

    Args:
        module (nn.Module): Changed in place.

    Returns:
        int: The number of BatchNorms folded.
    """
    count = 0
    for parent, conv_name, bn_name in _foldable_pairs(module):
        parent._modules[conv_name] = _fold_pair(parent._modules[conv_name], parent._modules[bn_name])
        parent._modules[bn_name] = nn.Identity()
        count += 1
    return count
