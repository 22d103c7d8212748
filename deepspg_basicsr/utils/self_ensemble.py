"""Geometric self-ensemble (x8): run a network on the 8 flips / rotations of an image and average.

The 8 transforms are the dihedral group of the square: a horizontal flip or not, then a rotation
by 0, 90, 180 or 270 degrees. Each output is mapped back by the inverse transform before
averaging, so an exactly flip / rotation-equivariant network gives its plain output back.
"""

import torch

__all__ = ['NUM_TRANSFORMS', 'apply_transform', 'invert_transform', 'self_ensemble']

#: Number of transforms: {identity, horizontal flip} x {0, 90, 180, 270 degrees}.
NUM_TRANSFORMS = 8


def _check(index):
    if not 0 <= index < NUM_TRANSFORMS:
        raise ValueError(f'transform index must be in [0, {NUM_TRANSFORMS}), got {index}')


def apply_transform(x, index):
    """Transform ``index`` of the spatial dims of ``x``.

    Args:
        x (Tensor): Shape (..., H, W).
        index (int): 0..7: ``index // 4`` flips left-right first, then ``index % 4`` quarter turns
            counter-clockwise.

    Returns:
        Tensor: Shape (..., H, W) for an even number of quarter turns, (..., W, H) otherwise.
    """
    _check(index)
    if index >= 4:
        x = x.flip(-1)
    return torch.rot90(x, index % 4, dims=(-2, -1))


def invert_transform(y, index):
    """The inverse of :func:`apply_transform`: ``invert_transform(apply_transform(x, i), i)`` is ``x``."""
    _check(index)
    y = torch.rot90(y, -(index % 4), dims=(-2, -1))
    return y.flip(-1) if index >= 4 else y


def self_ensemble(fn, x, *extra):
    """Average ``fn`` over the 8 flips / rotations of its inputs, each output transformed back.

    Args:
        fn (callable): Maps ``x`` (B, C, H, W) (and the ``extra`` inputs) to a tensor
            (B, C_out, H, W) of the same spatial size.
        x (Tensor): Input, shape (B, C, H, W).
        *extra (Tensor | list[Tensor]): Further spatial inputs (e.g. prior feature maps of any
            size), transformed with ``x``.

    Returns:
        Tensor: The mean of the 8 back-transformed outputs, shape (B, C_out, H, W), float32 or
        wider (accumulated in that type, one output at a time).
    """
    total = None
    for index in range(NUM_TRANSFORMS):
        args = [
            [apply_transform(t, index) for t in e] if isinstance(e, (list, tuple)) else apply_transform(e, index)
            for e in extra
        ]
        out = invert_transform(fn(apply_transform(x, index), *args), index)
        if out.shape[-2:] != x.shape[-2:]:
            raise ValueError(f'fn changed the spatial size: input {tuple(x.shape)}, output {tuple(out.shape)}')
        out = out.to(torch.promote_types(out.dtype, torch.float32))
        total = out.clone() if total is None else total.add_(out)  # never write into fn's output
    return total.div_(NUM_TRANSFORMS)
