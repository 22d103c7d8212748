"""Validation of paired low-light / normal-light data, shared by the dataset and the LMDB prep.

A paired data set is two folders (or two lists of files): low-light images and their
normal-light twins. :func:`find_pair_problems` reports *every* problem at once, each as a string
naming the files involved:

- a low-light image without a normal-light twin, and vice versa;
- two files on one side that claim the same twin (e.g. ``1.png`` and ``1.jpg``);
- a file that does not decode (corrupt or truncated);
- a file that is not an image (unknown extension, or a sub-folder);
- a pair whose two images differ in height or width.

:func:`check_pairs` raises :class:`PairCheckError` listing all of them, or returns the matched
pairs. Twins are matched by file stem: the same stem on both sides (LOL-v1, LOL-v2-synthetic),
or, LOL-v2-real style, ``low00001.png`` on the low side and ``normal00001.png`` (or
``high00001.png``) on the normal side. A BasicSR ``filename_tmpl`` (low stem = ``tmpl`` formatted
with the normal stem) replaces this rule when given. Hidden entries (names starting with a dot)
are ignored.

Images are read as stored (``cv2.IMREAD_UNCHANGED``): 8- or 16-bit, grey, BGR or BGRA. ``.npy``
arrays (SID / SMID as Retinexformer prepares them) are read with ``numpy.load`` and taken to be
in OpenCV's BGR order, which is how Retinexformer reads them.
"""

import io
import os
import re
from dataclasses import dataclass
from os import path as osp
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.npy')
LOW_PREFIXES = ('low',)
NORMAL_PREFIXES = ('normal', 'high')

PathLike = Union[str, os.PathLike]
FileSource = Union[PathLike, Sequence[PathLike]]


class PairCheckError(ValueError):
    """Raised when paired data has problems; ``problems`` holds one string per problem.

    Args:
        problems (list[str]): Problem descriptions, each naming the files involved.
        context (str): What was checked (e.g. the two folders). Default: ''.
    """

    def __init__(self, problems, context=''):
        self.problems = list(problems)
        where = f' in {context}' if context else ''
        lines = '\n'.join(f'  - {p}' for p in self.problems)
        super().__init__(f'{len(self.problems)} problem(s) found{where}:\n{lines}')


@dataclass
class ImagePair:
    """One matched pair.

    Args:
        key (str): Pair key shared by both files (the normalised stem).
        low_path (str): Low-light image file.
        normal_path (str): Normal-light image file.
        shape (tuple[int] | None): (h, w, c) of the normal image once decoded, else None.
        low_shape (tuple[int] | None): (h, w, c) of the low image once decoded, else None.
    """

    key: str
    low_path: str
    normal_path: str
    shape: Optional[Tuple[int, int, int]] = None
    low_shape: Optional[Tuple[int, int, int]] = None


def is_image_name(name):
    """Whether a file name has one of :data:`IMG_EXTENSIONS` (case-insensitive)."""
    return osp.splitext(name)[1].lower() in IMG_EXTENSIONS


def decode_image(buf, name=''):
    """Decode image bytes as stored.

    Args:
        buf (bytes): File content.
        name (str): File name; a ``.npy`` suffix selects ``numpy.load``. Default: ''.

    Returns:
        ndarray | None: (h, w) or (h, w, c) array in its stored dtype (uint8 / uint16) and
        channel order (BGR / BGRA for image files), or None when it does not decode.
    """
    if buf is None or len(buf) == 0:
        return None
    if str(name).lower().endswith('.npy'):
        try:
            img = np.load(io.BytesIO(buf), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)) or img.size == 0:
            return None
        return img
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        return None
    return img


def read_image(path):
    """Read an image file as stored (see :func:`decode_image`); raise ``ValueError`` naming the
    file when it does not decode.

    Args:
        path (str): Image file.

    Returns:
        ndarray: (h, w) or (h, w, c) array, stored dtype and channel order.
    """
    with open(path, 'rb') as f:
        buf = f.read()
    img = decode_image(buf, path)
    if img is None:
        raise ValueError(f"cannot decode '{path}' (corrupt or truncated image file)")
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"unsupported pixel type {img.dtype} in '{path}' (expected uint8 or uint16)")
    return img


def to_float_rgb(img):
    """Convert a decoded image to float32 RGB in [0, 1].

    Grey becomes three equal channels, an alpha channel is dropped, uint16 is divided by
    65535 and uint8 by 255; float input is clipped to [0, 1].

    Args:
        img (ndarray): (h, w) or (h, w, c) array from :func:`decode_image` (BGR / BGRA order).

    Returns:
        ndarray: (h, w, 3) float32 RGB array in [0, 1].
    """
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        out = img.astype(np.float32) / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        out = np.clip(img.astype(np.float32), 0.0, 1.0)
    else:
        raise ValueError(f'unsupported image dtype {img.dtype}')
    if out.ndim == 2:
        out = out[..., None]
    channels = out.shape[2]
    if channels == 1:
        return np.repeat(out, 3, axis=2)
    if channels == 4:
        out = out[..., :3]
    elif channels != 3:
        raise ValueError(f'unsupported number of channels: {channels}')
    return np.ascontiguousarray(out[..., ::-1])


def image_shape(img):
    """(h, w, c) of a decoded image, c = 1 for grey."""
    return (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])


def pair_key(stem, side):
    """Key under which a file stem is matched with its twin.

    ``low00001`` (low side) and ``normal00001`` / ``high00001`` (normal side) both map to
    ``00001``; any other stem maps to itself.

    Args:
        stem (str): File name without extension.
        side (str): 'low' or 'normal'.

    Returns:
        str: The key.
    """
    prefixes = LOW_PREFIXES if side == 'low' else NORMAL_PREFIXES
    for prefix in prefixes:
        match = re.fullmatch(rf'{prefix}(\d.*)', stem, flags=re.IGNORECASE)
        if match:
            return match.group(1)
    return stem


def _list_side(source, side, problems):
    """Image files of one side, as {key: path}; problems are appended to ``problems``."""
    label = 'low-light' if side == 'low' else 'normal-light'
    if isinstance(source, (str, os.PathLike)):
        folder = str(source)
        if not osp.isdir(folder):
            problems.append(f"{label} folder does not exist: '{folder}'")
            return [], f"'{folder}'"
        paths = [osp.join(folder, n) for n in sorted(os.listdir(folder)) if not n.startswith('.')]
        where = f"'{folder}'"
    else:
        paths = [str(p) for p in source]
        where = f'the {label} file list'
    files = []
    for path in paths:
        if osp.isdir(path):
            problems.append(f"not an image file: '{path}' is a folder (in the {label} side)")
        elif not osp.isfile(path):
            problems.append(f"{label} file does not exist: '{path}'")
        elif not is_image_name(path):
            problems.append(
                f"not an image file: '{path}' (extension '{osp.splitext(path)[1]}'; "
                f'expected one of {", ".join(IMG_EXTENSIONS)})'
            )
        else:
            files.append(path)
    if not files:
        problems.append(f'no {label} image files in {where}')
    return files, where


def match_pairs(low, normal, filename_tmpl=None):
    """Match low-light and normal-light files by stem, without decoding them.

    Args:
        low (str | list[str]): Low-light folder, or list of low-light files.
        normal (str | list[str]): Normal-light folder, or list of normal-light files.
        filename_tmpl (str | None): BasicSR template: the low twin of normal stem ``s`` has
            stem ``filename_tmpl.format(s)``. None or ``'{}'``: the rule of :func:`pair_key`.

    Returns:
        tuple[list[ImagePair], list[str]]: Pairs sorted by key, and problems found.
    """
    problems = []
    low_files, low_where = _list_side(low, 'low', problems)
    normal_files, normal_where = _list_side(normal, 'normal', problems)
    use_tmpl = filename_tmpl not in (None, '{}')

    def low_key(path):
        stem = osp.splitext(osp.basename(path))[0]
        return stem if use_tmpl else pair_key(stem, 'low')

    def normal_key(path):
        stem = osp.splitext(osp.basename(path))[0]
        return filename_tmpl.format(stem) if use_tmpl else pair_key(stem, 'normal')

    by_key = []
    for files, key_fn, label in (
        (low_files, low_key, 'low-light'),
        (normal_files, normal_key, 'normal-light'),
    ):
        table = {}
        for path in files:
            table.setdefault(key_fn(path), []).append(path)
        for key, paths in sorted(table.items()):
            if len(paths) > 1:
                names = ', '.join(f"'{p}'" for p in paths)
                problems.append(f"ambiguous {label} files for pair key '{key}': {names}")
        by_key.append({k: v[0] for k, v in table.items()})
    low_by_key, normal_by_key = by_key

    pairs = []
    for key in sorted(set(low_by_key) | set(normal_by_key)):
        if key not in normal_by_key:
            problems.append(
                f"missing normal-light twin: low-light image '{low_by_key[key]}' has no match in {normal_where}"
            )
        elif key not in low_by_key:
            problems.append(
                f"missing low-light twin: normal-light image '{normal_by_key[key]}' has no match in {low_where}"
            )
        else:
            pairs.append(ImagePair(key, low_by_key[key], normal_by_key[key]))
    return pairs, problems


def inspect_pairs(pairs, progress=False):
    """Decode every file of ``pairs`` and compare sizes; fill in the pairs' shapes.

    Args:
        pairs (list[ImagePair]): Pairs to inspect (their ``shape`` / ``low_shape`` are set).
        progress (bool): Show a tqdm progress bar. Default: False.

    Returns:
        list[str]: Problems (undecodable files, size mismatches).
    """
    problems = []
    shapes = {}  # a normal image shared by several pairs (SID / SMID) is decoded once
    for pair in tqdm(pairs, desc='Check pairs', unit='pair', disable=not progress):
        for path in (pair.low_path, pair.normal_path):
            if path not in shapes:
                try:
                    shapes[path] = image_shape(read_image(path))
                except (ValueError, OSError) as err:
                    shapes[path] = None
                    problems.append(str(err))
        pair.low_shape, pair.shape = shapes[pair.low_path], shapes[pair.normal_path]
        if pair.low_shape is not None and pair.shape is not None and pair.low_shape[:2] != pair.shape[:2]:
            problems.append(
                f"size mismatch: low-light '{pair.low_path}' is {pair.low_shape[0]}x{pair.low_shape[1]} "
                f"but normal-light '{pair.normal_path}' is {pair.shape[0]}x{pair.shape[1]} (h x w)"
            )
    return problems


def find_pair_problems(low, normal, filename_tmpl=None, decode=True, progress=False):
    """Every problem of a paired data set, as a list of strings naming the files.

    Args:
        low (str | list[str]): Low-light folder or files.
        normal (str | list[str]): Normal-light folder or files.
        filename_tmpl (str | None): See :func:`match_pairs`. Default: None.
        decode (bool): Also decode every file and compare sizes. Default: True.
        progress (bool): Show a progress bar while decoding. Default: False.

    Returns:
        list[str]: Problems; empty when the data is sound.
    """
    pairs, problems = match_pairs(low, normal, filename_tmpl)
    if decode:
        problems += inspect_pairs(pairs, progress)
    return problems


def check_pairs(low, normal, filename_tmpl=None, decode=True, progress=False) -> List[ImagePair]:
    """Match and validate a paired data set; raise with all problems listed.

    Args:
        low (str | list[str]): Low-light folder or files.
        normal (str | list[str]): Normal-light folder or files.
        filename_tmpl (str | None): See :func:`match_pairs`. Default: None.
        decode (bool): Also decode every file and compare sizes. Default: True.
        progress (bool): Show a progress bar while decoding. Default: False.

    Returns:
        list[ImagePair]: The pairs, sorted by key (with shapes when ``decode``).

    Raises:
        PairCheckError: When any problem is found.
    """
    pairs, problems = match_pairs(low, normal, filename_tmpl)
    if decode:
        problems += inspect_pairs(pairs, progress)
    if problems:
        context = f"'{low}' / '{normal}'" if isinstance(low, (str, os.PathLike)) else ''
        raise PairCheckError(problems, context)
    return pairs
