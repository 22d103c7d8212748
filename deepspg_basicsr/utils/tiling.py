"""Tiled inference for images too large to enhance in one pass, and pad / crop helpers.

:func:`tiled_forward` cuts the image into overlapping tiles laid out on a grid, runs the network
on one tile at a time and blends the tiles with a separable raised-cosine window, so that
memory is bounded by one tile and there are no seams. :func:`pad_to_multiple` and
:func:`crop_to` pad an input to the down-sampling factor of a network and crop the result back
(reflect padding, also when the pad is larger than the image).
"""

import math

import torch
import torch.nn.functional as F

__all__ = ['tiled_forward', 'pad_to_multiple', 'crop_to', 'axis_tiles']

_PAD_MODES = ('reflect', 'replicate', 'constant')


def _reflect_index(size_out, size, mode):
    """Source index along one axis for each of ``size_out`` output positions (``size`` known).

    'reflect' mirrors without repeating the edge sample and keeps mirroring (a triangle wave)
    when the pad exceeds the image; an axis of size 1 falls back to replicate.
    """
    idx = torch.arange(size_out)
    if mode == 'replicate' or size == 1:
        return idx.clamp_(max=size - 1)
    period = 2 * (size - 1)
    idx = idx % period
    return torch.where(idx < size, idx, period - idx)


def pad_to_multiple(x, multiple, mode='reflect'):
    """Pad the bottom and right of ``x`` so that its height and width are multiples of ``multiple``.

    Args:
        x (Tensor): Shape (..., H, W), e.g. (B, C, H, W).
        multiple (int): Target multiple (>= 1), e.g. the down-sampling factor of a network.
        mode (str): 'reflect' (mirror, edge sample not repeated; repeated mirroring when the pad
            is larger than the image, replicate for a size-1 axis), 'replicate' or 'constant'
            (zeros). Default: 'reflect'.

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded tensor, shape (..., H', W') with H' and W' the
        smallest multiples of ``multiple`` not below H and W (``x`` itself when nothing is
        padded), and the original size (H, W) for :func:`crop_to`.
    """
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f'multiple must be a positive int, got {multiple!r}')
    if mode not in _PAD_MODES:
        raise ValueError(f'unknown pad mode {mode!r}; expected one of {_PAD_MODES}')
    if x.dim() < 2:
        raise ValueError(f'expected a tensor of shape (..., H, W), got shape {tuple(x.shape)}')
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f'cannot pad an empty image of size {h}x{w}')
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    if mode == 'constant':
        return F.pad(x, (0, pad_w, 0, pad_h), mode='constant', value=0), (h, w)
    rows = _reflect_index(h + pad_h, h, mode).to(x.device)
    cols = _reflect_index(w + pad_w, w, mode).to(x.device)
    return x[..., rows[:, None], cols[None, :]], (h, w)


def crop_to(x, h, w):
    """Crop ``x`` (..., H', W') to its top-left (..., h, w); the inverse of :func:`pad_to_multiple`."""
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ValueError(f'cannot crop a tensor of spatial size {tuple(x.shape[-2:])} to ({h}, {w})')
    return x[..., :h, :w]


def axis_tiles(length, tile, overlap, align=1):
    """Lay tiles along one axis and compute their blending windows.

    Tiles have size ``min(tile, length)``; their starts are spread evenly from 0 to
    ``length - tile`` (multiples of ``align``) so that neighbours overlap by at least ``overlap``
    pixels. Across each
    overlap the weight passes from one tile to the next along a raised-cosine ramp of
    ``overlap // 2`` pixels centred in the overlap; the pixels on either side of the ramp, at
    least ``overlap // 4`` near each inner tile edge, get weight 0 in the tile whose edge it
    is. The windows are normalised so that at every position they sum to 1.

    Args:
        length (int): Size of the axis.
        tile (int): Tile size.
        overlap (int): Minimum overlap of neighbouring tiles, 0 <= overlap < tile.
        align (int): Every start is a multiple of this; ``length`` and ``tile`` must then be
            multiples of it too (when ``length > tile``), and ``tile - overlap >= align``.
            Default: 1.

    Returns:
        list[tuple[int, Tensor]]: For each tile its start and its float64 window, shape (size,).
    """
    if length <= tile:
        return [(0, torch.ones(length, dtype=torch.float64))]
    if length % align or tile % align or tile - overlap < align:
        raise ValueError(
            f'align={align} needs length ({length}) and tile ({tile}) multiples of it and tile - overlap >= align'
        )
    # in units of align: the last start is span, consecutive starts differ by at most step
    span, step = (length - tile) // align, (tile - overlap) // align
    num = 1 + math.ceil(span / step)
    starts = [align * (i * span // (num - 1)) for i in range(num)]
    blend = overlap // 2
    k = torch.arange(blend, dtype=torch.float64)
    ramp_up = 0.5 - 0.5 * torch.cos(math.pi * (k + 0.5) / max(blend, 1))
    ramp_down = ramp_up.flip(0)
    # cuts[i]: first position of the ramp between tile i and tile i + 1, centred in their overlap
    cuts = []
    for i in range(num - 1):
        ov = starts[i] + tile - starts[i + 1]
        cuts.append(starts[i + 1] + (ov - blend) // 2)

    windows = []
    total = torch.zeros(length, dtype=torch.float64)
    for i, start in enumerate(starts):
        win = torch.ones(tile, dtype=torch.float64)
        if i > 0:
            a = cuts[i - 1] - start
            win[:a] = 0
            win[a : a + blend] *= ramp_up
        if i < num - 1:
            a = cuts[i] - start
            win[a : a + blend] *= ramp_down
            win[a + blend :] = 0
        windows.append(win)
        total[start : start + tile] += win
    # total > 0 everywhere: tile i is positive on [cuts[i-1], cuts[i] + blend), a chain covering the axis
    return [(start, win / total[start : start + tile]) for start, win in zip(starts, windows)]


def _run_padded(fn, x, pad_multiple, box=None):
    """``fn`` on ``x`` reflect-padded to ``pad_multiple`` and cropped back; checks the output size.
    With ``box`` (the tile's place), ``fn`` is called as ``fn(padded, box)``."""
    padded, (h, w) = pad_to_multiple(x, pad_multiple)
    out = fn(padded) if box is None else fn(padded, box)
    if not torch.is_tensor(out) or out.dim() != 4 or out.shape[-2:] != padded.shape[-2:]:
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(
            f'fn must map a (B, C, H, W) tensor to (B, C_out, H, W) of the same spatial size; '
            f'input {tuple(padded.shape)} gave {got}'
        )
    return crop_to(out, h, w)


def _pair(value, name):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f'{name} must be an int or a pair of ints, got {value!r}')
    return pair


def tiled_forward(fn, x, tile=512, overlap=32, pad_multiple=1, align=1, with_box=False, progress=None):
    """Run ``fn`` on overlapping tiles of ``x`` and blend them without seams.

    Tiles lie on a grid (see :func:`axis_tiles` for one axis); each tile is reflect-padded to a
    multiple of ``pad_multiple``, passed through ``fn`` and cropped back, then added to the
    output with the weight ``w_row(y) * w_col(x)``. The windows sum to 1 everywhere and each is
    zero within ``overlap // 4`` pixels of an inner tile edge, so for a translation-equivariant
    network whose receptive-field radius is at most ``overlap // 4`` the result equals
    ``fn(x)`` up to float rounding. For networks that see the whole image (global pooling,
    attention, deep U-Nets) tiles differ; the raised-cosine ramp of ``overlap // 2`` pixels
    limits the step between neighbouring output pixels to about ``pi / overlap`` times the
    difference between the outputs of neighbouring tiles, so there are no visible seams.

    When the image fits in one tile (``H <= tile`` and ``W <= tile``) the result is
    ``fn(x)`` itself (``pad_multiple`` still applies).

    A network that down-samples by ``f`` (strided convolutions) computes different sample
    phases on a tile that starts at a position not divisible by ``f``. With ``align=f`` the image
    is first reflect-padded at its bottom / right to a multiple of ``f`` (as such networks pad
    their input themselves), tile sizes are rounded down to multiples of ``f`` and every tile
    starts at a multiple of ``f``; then the equality above also holds for down-sampling
    networks (receptive-field radius measured in input pixels).

    Memory: besides ``x``, the output accumulator of B * C_out * H * W values (float32, or the
    output dtype if wider, on the device of ``fn``'s output; 72 MB for 1x3x2000x3000), plus
    what ``fn`` needs for one padded tile of at most ``tile + pad_multiple - 1`` pixels square,
    plus one weighted output tile. No per-pixel weight map is kept. Call it under
    ``torch.no_grad()``, otherwise autograd keeps every tile's activations. To keep the large
    tensors on the CPU and run the network on a GPU, pass ``x`` on the CPU and let ``fn`` move
    each tile: ``lambda t: net(t.cuda()).cpu()``.

    Args:
        fn (callable): Maps a float tensor (B, C, h, w) in [0, 1] to (B, C_out, h, w).
        x (Tensor): Input, shape (B, C, H, W).
        tile (int | tuple[int, int]): Tile size (height, width). Default: 512.
        overlap (int | tuple[int, int]): Minimum overlap of neighbouring tiles, 0 <= overlap <
            tile. Tiled equals untiled for local networks when it is at least 4x their
            receptive-field radius. Default: 32.
        pad_multiple (int): Reflect-pad each tile to a multiple of this (the network's
            down-sampling factor) and crop the output back. Default: 1.
        align (int): Tile starts and sizes are multiples of this (see above). Default: 1.
        with_box (bool): Call ``fn(tile, box)`` with ``box = (top, left, height, width)``, the
            tile's place in ``x`` (in the padded image when ``align > 1``), e.g. to crop
            features computed on the whole image. Default: False.
        progress (callable | None): Called as ``progress(done, total)`` after each tile (once,
            ``(1, 1)``, when the image fits in one tile). Default: None.

    Returns:
        Tensor: Shape (B, C_out, H, W), dtype of ``fn``'s output.
    """
    if x.dim() != 4:
        raise ValueError(f'expected x of shape (B, C, H, W), got {tuple(x.shape)}')
    tile_h, tile_w = _pair(tile, 'tile')
    overlap_h, overlap_w = _pair(overlap, 'overlap')
    if not isinstance(align, int) or align < 1:
        raise ValueError(f'align must be a positive int, got {align!r}')
    if align > 1:
        tile_h, tile_w = tile_h // align * align, tile_w // align * align
    for t, o in ((tile_h, overlap_h), (tile_w, overlap_w)):
        if t < 1 or not 0 <= o < t or t - o < align:
            raise ValueError(
                f'need tile >= 1, 0 <= overlap < tile and tile - overlap >= align, got tile={tile!r}, '
                f'overlap={overlap!r}, align={align}'
            )
    x, size = pad_to_multiple(x, align)
    height, width = x.shape[-2:]
    if height <= tile_h and width <= tile_w:
        out = crop_to(_run_padded(fn, x, pad_multiple, (0, 0, height, width) if with_box else None), *size)
        if progress is not None:
            progress(1, 1)
        return out

    rows = axis_tiles(height, tile_h, overlap_h, align)
    cols = axis_tiles(width, tile_w, overlap_w, align)
    out, done, total = None, 0, len(rows) * len(cols)
    for top, win_y in rows:
        for left, win_x in cols:
            size_y, size_x = win_y.numel(), win_x.numel()
            box = (top, left, size_y, size_x) if with_box else None
            y = _run_padded(fn, x[..., top : top + size_y, left : left + size_x], pad_multiple, box)
            if out is None:
                out_dtype = y.dtype
                acc_dtype = torch.promote_types(out_dtype, torch.float32)
                out = torch.zeros(y.shape[0], y.shape[1], height, width, dtype=acc_dtype, device=y.device)
            weight = (win_y[:, None] * win_x[None, :]).to(device=y.device, dtype=acc_dtype)
            out[..., top : top + size_y, left : left + size_x].addcmul_(y.to(acc_dtype), weight)
            del y
            done += 1
            if progress is not None:
                progress(done, total)
    return crop_to(out.to(out_dtype), *size)
