"""Read any image OpenCV reads as a float RGB tensor, and write the result back in the same format.

:func:`read_image` returns the (1, 3, H, W) float32 RGB tensor in [0, 1] that the networks take,
and an :class:`ImageRecord` saying how the file was stored: bit depth, grey or colour, and the
alpha channel (kept aside, never enhanced). :func:`write_image` undoes this: it writes the
enhanced tensor with the same bit depth and channels and re-attaches the alpha channel, as far
as the codec chosen by the file extension allows.

Paths may hold any characters (files are read and written through ``numpy`` buffers, not
``cv2.imread``, which fails on non-ASCII paths on Windows).
"""

import os
import warnings
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch

__all__ = ['ImageIOError', 'ImageRecord', 'array_to_tensor', 'read_image', 'tensor_to_array', 'write_image']

_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}
# Extensions whose OpenCV codec stores 16-bit integers / float32 / an alpha channel.
_EXT_16BIT = {'.png', '.tif', '.tiff'}
_EXT_FLOAT = {'.tif', '.tiff', '.exr', '.pfm', '.hdr'}
_EXT_ALPHA = {'.png', '.tif', '.tiff', '.webp', '.exr'}
_JPEG_MAGIC = b'\xff\xd8\xff'


class ImageIOError(OSError):
    """An image file cannot be decoded, has an unsupported format, or cannot be written."""


@dataclass
class ImageRecord:
    """How an image was stored, to write the enhanced result back the same way.

    Attributes:
        path (str): The file read.
        dtype (str): 'uint8', 'uint16' or 'float32' (sample type in the file).
        channels (int): Colour channels in the file without alpha: 1 (grey) or 3.
        alpha (ndarray | None): Alpha channel as read, shape (H, W), dtype ``dtype``.
    """

    path: str = ''
    dtype: str = 'uint8'
    channels: int = 3
    alpha: Optional[np.ndarray] = None


def _decode(path):
    """Decode ``path`` keeping depth, channels and alpha (EXIF orientation applied for JPEG)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ImageIOError(f'cannot read image file {path}: {err}') from err
    # JPEG has no alpha: decode it the way that applies the EXIF orientation (UNCHANGED ignores it)
    if buf[:3].tobytes() == _JPEG_MAGIC:
        flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    else:
        flags = cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(buf, flags) if buf.size else None
    if img is None:
        raise ImageIOError(f'cannot decode image file {path}: empty, truncated or not an image OpenCV reads')
    return img


def read_image(path):
    """Read an image for enhancement.

    Args:
        path (str | os.PathLike): Any file OpenCV decodes: 8- or 16-bit (or float32) samples,
            grey, grey + alpha, BGR or BGRA.

    Returns:
        tuple[Tensor, ImageRecord]: The image as float32 RGB, shape (1, 3, H, W), in [0, 1]
        (grey replicated to three channels, alpha removed; float files clipped to [0, 1]), and
        the record for :func:`write_image`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageIOError: naming the file, when it cannot be decoded or has an unsupported sample type.
    """
    path = os.fspath(path)
    return array_to_tensor(_decode(path), path=path)


def array_to_tensor(img, channel_order='bgr', path='<array>'):
    """A decoded image array as the networks' input, and how it was stored (:func:`read_image`'s
    conversion, for arrays from elsewhere too).

    Args:
        img (ndarray): (H, W) or (H, W, C) with C in 1 (grey), 2 (grey + alpha), 3 (colour) or
            4 (colour + alpha); uint8, uint16 or float32 in [0, 1].
        channel_order (str): ``bgr`` (OpenCV's) or ``rgb``: the order of the colour channels.
        path (str): Named in errors and kept in the record.

    Returns:
        tuple[Tensor, ImageRecord]: (1, 3, H, W) float32 RGB in [0, 1], and the record.
    """
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if img.dtype not in _SCALE:
        raise ImageIOError(f'unsupported sample type {img.dtype} in {path}; expected uint8, uint16 or float32')
    if img.ndim == 2:
        img = img[..., None]
    num = img.shape[2] if img.ndim == 3 else 0
    if num not in (1, 2, 3, 4):
        raise ImageIOError(f'unsupported number of channels {num} in {path} (shape {img.shape})')
    alpha = img[..., -1].copy() if num in (2, 4) else None
    colour = img[..., : 3 if num >= 3 else 1]
    record = ImageRecord(path=path, dtype=str(img.dtype), channels=colour.shape[2], alpha=alpha)

    rgb = colour.astype(np.float32) / _SCALE[img.dtype]
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    elif channel_order == 'bgr':
        rgb = rgb[..., ::-1]
    if img.dtype == np.float32:
        rgb = np.clip(np.nan_to_num(rgb), 0.0, 1.0)
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    return tensor, record


def _quantise(img, dtype):
    """float [0, 1] array -> ``dtype`` array (rounded for integer types)."""
    img = np.clip(img, 0.0, 1.0)
    if dtype == np.float32:
        return img.astype(np.float32)
    return np.round(img * _SCALE[dtype]).astype(dtype)


def tensor_to_array(tensor, record, dtype=None, channel_order='bgr', target='the output'):
    """An enhanced RGB tensor as an array stored like the one ``record`` describes (the inverse of
    :func:`array_to_tensor`): its sample type, grey or colour, its alpha channel re-attached.

    Args:
        tensor (Tensor): RGB in [0, 1] (clipped), shape (1, 3, H, W) or (3, H, W).
        record (ImageRecord): From :func:`array_to_tensor` / :func:`read_image`.
        dtype (numpy.dtype | None): Sample type; None: the record's. Default: None.
        channel_order (str): ``bgr`` or ``rgb``. Default: ``bgr``.
        target (str): Named in errors. Default: 'the output'.

    Returns:
        ndarray: (H, W, C): C = 1 (grey), 2 (grey + alpha), 3 or 4 (colour + alpha).
    """
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f'write_image writes one image, got a batch of shape {tuple(tensor.shape)}')
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f'expected an RGB tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(tensor.shape)}')
    rgb = tensor.detach().float().cpu().numpy().transpose(1, 2, 0)
    dtype = np.dtype(record.dtype if dtype is None else dtype)
    if record.channels == 1:
        grey = rgb[..., 0:1] * 0.299 + rgb[..., 1:2] * 0.587 + rgb[..., 2:3] * 0.114
        out = _quantise(grey, dtype)
    else:
        out = _quantise(rgb[..., ::-1] if channel_order == 'bgr' else rgb, dtype)
    if record.alpha is None:
        return out
    if record.alpha.shape != out.shape[:2]:
        raise ImageIOError(
            f'cannot re-attach the alpha channel of {record.path} ({record.alpha.shape}) to an '
            f'image of size {out.shape[:2]} for {target}'
        )
    src = np.dtype(record.alpha.dtype)
    alpha = record.alpha if src == dtype else _quantise(record.alpha.astype(np.float32) / _SCALE[src], dtype)
    return np.concatenate([out, alpha[..., None]], axis=2)


def write_image(path, tensor, record=None):
    """Write an enhanced image in the format described by ``record``.

    The extension of ``path`` chooses the codec. The sample type of the record is kept when the
    codec can store it (16-bit for PNG / TIFF, float32 for TIFF / EXR / PFM / HDR); otherwise
    16-bit is written as 8-bit, and float32 as 16-bit (PNG) or 8-bit. A grey source is
    written grey (ITU-R BT.601 luma of the RGB result); the alpha channel is re-attached when
    the codec stores alpha (PNG, TIFF, WebP, EXR) and dropped with a warning otherwise.
    Missing parent folders are created.

    Args:
        path (str | os.PathLike): Output file.
        tensor (Tensor): RGB image in [0, 1] (clipped), shape (1, 3, H, W) or (3, H, W).
        record (ImageRecord | None): From :func:`read_image`. Default: 8-bit RGB, no alpha.

    Raises:
        ImageIOError: naming the file, when the size does not match the alpha channel or the
            file cannot be encoded or written.
    """
    path = os.fspath(path)
    record = record if record is not None else ImageRecord()
    ext = os.path.splitext(path)[1].lower()
    dtype = np.dtype(record.dtype)
    if dtype == np.float32 and ext not in _EXT_FLOAT:
        dtype = np.dtype(np.uint16) if ext in _EXT_16BIT else np.dtype(np.uint8)
    if dtype == np.uint16 and ext not in _EXT_16BIT:
        dtype = np.dtype(np.uint8)
    if record.alpha is not None and ext not in _EXT_ALPHA:
        warnings.warn(f'{ext or "this"} files store no alpha channel: {path} is written without it', stacklevel=2)
        record = ImageRecord(record.path, record.dtype, record.channels, None)
    out = tensor_to_array(tensor, record, dtype=dtype, target=path)
    if out.shape[2] == 2:  # grey + alpha is written as BGRA
        out = np.concatenate([np.repeat(out[..., :1], 3, axis=2), out[..., 1:]], axis=2)

    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(out))
        if not ok:
            raise ImageIOError(f'OpenCV could not encode {path}')
        buf.tofile(path)
    except cv2.error as err:
        raise ImageIOError(f'cannot write image {path} (codec for "{ext}"): {err}') from err
    except OSError as err:
        if isinstance(err, ImageIOError):
            raise
        raise ImageIOError(f'cannot write image {path}: {err}') from err


def write_png(path, img, compression=3):
    """Write an 8/16-bit array (BGR, as OpenCV's) as PNG, through ``cv2.imencode`` so that non-ASCII
    paths work; an encoding failure raises naming the file.

    Args:
        path (str): Destination file.
        img (ndarray): (H, W) or (H, W, C) uint8 / uint16.
        compression (int): zlib level 0-9 (speed against size). Default: 3.
    """
    ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for '{path}'")
    with open(path, 'wb') as f:
        f.write(buf.tobytes())
