"""HRNet features without the work nobody reads.

An inference saving for a frozen HRNet (MMSegmentation's ``HRNet`` backbone), independent of the
weights (BatchNorm folding, the other one, is :mod:`deepspg_basicsr.deploy.batchnorm_fold`):

* :func:`hrnet_branches`: the backbone's forward, but the last fuse of the last stage computes
  only the requested output branches. Each fused output ``i`` sums every branch ``j`` resampled
  to branch ``i``; output 3 (stride 32) alone costs three strided convolutions of branch 0 at
  stride 4, two of branch 1, one of branch 2. DeepSPG reads branches 0, 1, 2, so that work is
  dead. The branches that are computed are exactly the backbone's outputs (same operations in
  the same order: bit-identical).
"""

from torch import nn

__all__ = ['is_mmseg_hrnet', 'hrnet_branches']


def is_mmseg_hrnet(backbone):
    """Whether ``backbone`` is MMSegmentation's HRNet (the structure :func:`hrnet_branches` knows)."""
    return type(backbone).__name__ == 'HRNet' and all(hasattr(backbone, f'stage{i}') for i in (2, 3, 4))


def _transition(transitions, y_list, num_branches):
    out = []
    for i in range(num_branches):
        layer = transitions[i]
        if layer is None:
            out.append(y_list[i])
        else:  # a new, coarser branch grows out of the coarsest one
            out.append(layer(y_list[i] if i < len(y_list) else y_list[-1]))
    return out


def _upsample_path(layers, t):
    """A fuse path to a finer branch (conv, BN, MMSegmentation ``Upsample`` by ``2^k``), with the
    upsampled size computed as ``size * 2^k`` in tensor shapes: the ``Upsample`` module computes
    it with ``int()``, which a graph export (``torch.export``, ONNX) bakes in as a constant."""
    for layer in layers:
        factor = getattr(layer, 'scale_factor', None)
        if not getattr(layer, 'size', None) and isinstance(factor, (int, float)) and float(factor).is_integer():
            size = (t.shape[-2] * int(factor), t.shape[-1] * int(factor))
            t = nn.functional.interpolate(t, size=size, mode=layer.mode, align_corners=layer.align_corners)
        else:
            t = layer(t)
    return t


def _fuse(module, x, i):
    """Output ``i`` of an HRModule's fuse from its processed branches ``x`` (terms summed in branch
    order, as the full forward sums them: the same rounding)."""
    y = None
    for j in range(module.num_branches):
        if j == i:
            term = x[j]
        elif j > i:
            up = _upsample_path(module.fuse_layers[i][j], x[j])
            term = nn.functional.interpolate(up, size=x[i].shape[2:], mode='bilinear', align_corners=False)
        else:
            term = module.fuse_layers[i][j](x[j])
        y = term if y is None else y + term
    return module.relu(y)


def _hr_module(module, x, outputs):
    """An HRModule on the branch list ``x``, computing only the fused ``outputs``."""
    if module.num_branches == 1:
        return [module.branches[0](x[0])]
    x = [module.branches[i](x[i]) for i in range(module.num_branches)]
    return [_fuse(module, x, i) if i in outputs else None for i in range(len(module.fuse_layers))]


def hrnet_branches(backbone, x, branches):
    """MMSegmentation HRNet forward that returns only ``branches`` (list of indices).

    Args:
        backbone (nn.Module): MMSegmentation ``HRNet`` (see :func:`is_mmseg_hrnet`).
        x (Tensor): Normalised input (B, 3, H, W).
        branches (list[int]): Output branches to compute, e.g. [0, 1, 2].

    Returns:
        list[Tensor]: The requested branches in the order given, each equal to the full
        forward's output (B, C_i, ceil(H / 2^(i+2)), ceil(W / 2^(i+2))).
    """
    x = backbone.relu(backbone.norm1(backbone.conv1(x)))
    x = backbone.relu(backbone.norm2(backbone.conv2(x)))
    y_list = [backbone.layer1(x)]
    stages = [
        (backbone.transition1, backbone.stage2, backbone.stage2_cfg),
        (backbone.transition2, backbone.stage3, backbone.stage3_cfg),
        (backbone.transition3, backbone.stage4, backbone.stage4_cfg),
    ]
    wanted = set(int(b) for b in branches)
    for s, (transition, stage, cfg) in enumerate(stages):
        y_list = _transition(transition, y_list, cfg['num_branches'])
        for m, module in enumerate(stage):
            last = s == len(stages) - 1 and m == len(stage) - 1
            y_list = _hr_module(module, y_list, wanted if last else range(len(module.fuse_layers)))
    missing = [b for b in branches if not 0 <= b < len(y_list) or y_list[b] is None]
    if missing:
        raise ValueError(f'HRNet has no output branch {missing} ({len(y_list)} outputs)')
    return [y_list[b] for b in branches]
