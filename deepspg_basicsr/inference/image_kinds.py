"""The image kinds :meth:`DeepSPGEnhancer.enhance` takes (NumPy arrays, PIL images, tensors) to the
networks' input and back, the same way files are read and written
(:func:`~deepspg_basicsr.utils.image_io.array_to_tensor` / ``tensor_to_array``), so an array
enhanced here equals the file ``deepspg-enhance`` writes for it.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..utils.image_io import array_to_tensor, tensor_to_array

__all__ = ['to_tensor', 'from_tensor']

#: PIL modes kept as they are (``I`` becomes ``I;16``; others RGB, or RGBA when they carry transparency).
PIL_MODES = ('L', 'LA', 'RGB', 'RGBA', 'I;16', 'F')


@dataclass
class ImageKind:
    """How the caller's image was given: ``kind`` (``numpy`` / ``pil`` / ``tensor``) and what restores it."""

    kind: str
    channel_order: str = 'bgr'
    record: Any = None
    dtype: Any = None
    ndim: int = 3
    mode: str = ''
    device: Any = None


def _is_pil(image):
    return type(image).__module__.startswith('PIL.') and hasattr(image, 'mode') and hasattr(image, 'getbands')


def to_tensor(image, channel_order='bgr'):
    """``image`` as (B, 3, H, W) float32 RGB in [0, 1] on the CPU, and its :class:`ImageKind`."""
    if torch.is_tensor(image):
        if not image.is_floating_point():
            raise TypeError(f'enhance takes float tensors (RGB in [0, 1]), got {image.dtype}')
        if image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f'enhance takes tensors of shape (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}')
        x = image.detach().float().cpu().clamp(0, 1)
        kind = ImageKind('tensor', dtype=image.dtype, ndim=image.dim(), device=image.device)
        return (x[None] if image.dim() == 3 else x), kind
    if _is_pil(image):
        mode = image.mode if image.mode in PIL_MODES else ('RGBA' if 'transparency' in image.info else 'RGB')
        if image.mode == 'I':  # 32-bit integer grey (how Pillow may open 16-bit PNGs): returned as I;16
            mode, arr = 'I;16', np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        else:
            arr = np.asarray(image.convert(mode) if mode != image.mode else image)
        if mode == 'I;16':
            arr = arr.astype(np.uint16)
        x, record = array_to_tensor(np.ascontiguousarray(arr), 'rgb', '<PIL image>')
        return x, ImageKind('pil', 'rgb', record, mode=mode)
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype.kind == 'f' and arr.dtype != np.float32:
            arr = arr.astype(np.float32)
        x, record = array_to_tensor(arr, channel_order, '<array>')
        return x, ImageKind('numpy', channel_order, record, dtype=image.dtype, ndim=image.ndim)
    raise TypeError(f'enhance takes a NumPy array, a PIL image or a tensor, got {type(image).__name__}')


def _image_back(out, kind):
    if kind.kind == 'tensor':
        return out.to(kind.device, kind.dtype)
    arr = tensor_to_array(out, kind.record, channel_order=kind.channel_order)
    if kind.kind == 'pil':
        from PIL import Image

        arr = arr[..., 0] if arr.shape[2] == 1 else arr
        return Image.fromarray(arr)
    arr = arr.astype(kind.dtype, copy=False)
    return arr[..., 0] if kind.ndim == 2 else arr


def _map_back(t, kind):
    if kind.kind == 'tensor':
        return t.to(kind.device, kind.dtype)
    arr = t[0].permute(1, 2, 0).numpy().astype(np.float32)
    return np.ascontiguousarray(arr[..., ::-1] if kind.channel_order == 'bgr' else arr)


def from_tensor(results, kind, maps=False, segmentation=False):
    """The enhancer's results (one dict per image of the batch) as the caller's kind."""
    image = torch.cat([r['out'] for r in results]) if kind.kind == 'tensor' else results[0]['out']
    if kind.kind == 'tensor' and kind.ndim == 3:
        image = image[0]
    image = _image_back(image, kind)
    if not (maps or segmentation):
        return image
    out = {'image': image}
    for key in ('illumination', 'reflectance') if maps else ():
        t = torch.cat([r[key] for r in results])
        out[key] = _map_back(t[0] if kind.ndim == 3 and kind.kind == 'tensor' else t, kind)
    if segmentation:
        classes = torch.cat([r['segmentation'] for r in results])
        if kind.kind == 'tensor':
            out['segmentation'] = classes[0] if kind.ndim == 3 else classes
        else:
            out['segmentation'] = classes[0].numpy()
    return out
