"""Paired low-light / normal-light dataset for BasicSR (``type: PairedLLIEDataset``)."""

import copy
import os
import re
from os import path as osp

import numpy as np
import torch
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from .pair_check import PairCheckError, check_pairs, decode_image, to_float_rgb

_META_LINE = re.compile(r'^(?P<name>.+?)\s+\((?P<h>\d+),\s*(?P<w>\d+),\s*(?P<c>\d+)\)\s+(?P<level>\d+)\s*$')


def read_lmdb_meta_info(lmdb_path):
    """Read an LMDB folder's ``meta_info.txt`` (BasicSR format).

    Args:
        lmdb_path (str): The ``*.lmdb`` folder.

    Returns:
        dict[str, tuple[int]]: Key (image name without ``.png``) -> (h, w, c), in file order.
    """
    meta_file = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta_file):
        raise FileNotFoundError(f"LMDB meta information file does not exist: '{meta_file}'")
    entries = {}
    with open(meta_file) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            match = _META_LINE.match(line.strip())
            if match is None:
                raise ValueError(f"malformed line {line_no} in '{meta_file}': {line.strip()!r}")
            key = osp.splitext(match['name'])[0]
            entries[key] = (int(match['h']), int(match['w']), int(match['c']))
    return entries


def _pad_to(img, size):
    """Reflect-pad an (h, w, c) array at the bottom / right to at least ``size`` x ``size``."""
    h, w = img.shape[:2]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h == 0 and pad_w == 0:
        return img
    return np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode='reflect')


def _to_tensor(img):
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


class LazyFileClientMixin:
    """BasicSR file client opened lazily, once per worker process, and image decoding with errors
    naming the file (or LMDB key). The dataset sets ``backend`` ('disk' | 'lmdb'),
    ``io_backend_kwargs``, ``file_client = None``, and defines :meth:`lmdb_sources`."""

    def lmdb_sources(self):
        """Client key -> LMDB folder, e.g. ``{'lq': ..., 'gt': ...}`` (lmdb backend)."""
        raise NotImplementedError

    def _client(self):
        if self.file_client is None or self._client_pid != os.getpid():
            if self.file_client is not None and self.backend == 'lmdb':
                # inherited through fork (the dataset was read before the workers started): an
                # LMDB environment must not be used across fork, and lmdb refuses to open the
                # same path twice in a process, so drop the inherited handles first.
                for env in self.file_client.client._client.values():
                    env.close()
            if self.backend == 'lmdb':
                sources = self.lmdb_sources()
                self.file_client = FileClient(
                    'lmdb', db_paths=list(sources.values()), client_keys=list(sources), **self.io_backend_kwargs
                )
            else:
                self.file_client = FileClient('disk', **self.io_backend_kwargs)
            self._client_pid = os.getpid()
        return self.file_client

    def _load(self, path, client_key):
        """Read one image as an (h, w, 3) float32 RGB array in [0, 1]."""
        buf = self._client().get(path, client_key)
        if self.backend == 'lmdb':
            folder = self.lmdb_sources()[client_key]
            if buf is None:
                raise KeyError(f"key '{path}' is not in the LMDB '{folder}'")
            where = f"key '{path}' of the LMDB '{folder}'"
            img = decode_image(buf, 'lmdb.png')
        else:
            where = f"'{path}'"
            img = decode_image(buf, path)
        if img is None:
            raise ValueError(f'cannot decode {where} (corrupt or truncated image)')
        return to_float_rgb(img)

    def __getstate__(self):
        # LMDB environments cannot be pickled (spawned workers): each worker opens its own.
        state = self.__dict__.copy()
        state['file_client'] = None
        state['_client_pid'] = None
        return state


@DATASET_REGISTRY.register()
class PairedLLIEDataset(LazyFileClientMixin, data.Dataset):
    """Paired low-light image enhancement dataset, read from folders or from BasicSR LMDB.

    ``lq`` is the low-light input, ``gt`` the normal-light target; scale is always 1.

    Disk backend: files are paired by stem as in :mod:`~deepspg_basicsr.data.pair_check`
    (``1.png`` / ``1.png`` for LOL-v1, ``low00001.png`` / ``normal00001.png`` for LOL-v2-real),
    or through ``filename_tmpl``. LMDB backend: folders written by
    :mod:`~deepspg_basicsr.data.lmdb_prepare` (or BasicSR's lmdb tools); pairs are the keys of
    ``meta_info.txt``.

    Images are decoded as stored: 16-bit images are divided by 65535, grey images are repeated
    to three channels, alpha channels are dropped; ``.npy`` arrays (disk only) are taken as BGR.

    In the ``train`` phase a random ``gt_size`` x ``gt_size`` patch is cropped at the same place
    from both images, then flipped / rotated. An image smaller than ``gt_size`` along a side is
    first reflect-padded (at the bottom / right, both images alike) up to ``gt_size``, so small
    images still give full patches; a ``gt_size`` of more than twice an image's side is refused
    (``PairCheckError`` naming ``gt_size`` and the smallest image, when the data set is built, or
    when the image is read with ``check_pairs: false``). In other phases whole images are returned.

    The file client (LMDB environments) is opened lazily in ``__getitem__``, once per worker
    process. The given ``opt`` is copied, never modified.

    Args:
        opt (dict): Config for the dataset. It contains the following keys:
            dataroot_gt (str): Normal-light folder, or ``high.lmdb`` folder.
            dataroot_lq (str): Low-light folder, or ``low.lmdb`` folder.
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``, plus FileClient options.
                Default: disk.
            filename_tmpl (str): Low stem from normal stem, e.g. ``'{}_low'`` (disk only).
                Default: pairing by stem with LOL-v2 prefixes.
            phase (str): ``'train'`` crops and augments; anything else returns whole images.
            gt_size (int): Training patch size (train phase).
            use_hflip (bool): Random horizontal flips (train phase). Default: False.
            use_rot (bool): Random vertical flips and transpositions (train phase). Default: False.
            check_pairs (bool): Validate at init: disk, every file is decoded and sizes compared
                (naming problems are always reported); LMDB, both meta_info files must list the
                same keys with the same sizes. Raises ``PairCheckError`` with every problem.
                Default: True.
            scale (int): Must be 1 if given (BasicSR adds it).
            name (str): Dataset name used in logs.

    Returns (per item):
        dict: ``lq`` and ``gt``, (3, h, w) float32 RGB tensors in [0, 1]; ``lq_path`` and
        ``gt_path``, the file paths (disk) or LMDB keys (lmdb).
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = copy.deepcopy(opt)
        io_opt = dict(self.opt.get('io_backend') or {'type': 'disk'})
        self.backend = io_opt.pop('type', 'disk')
        for derived in ('db_paths', 'client_keys'):  # set from dataroot_lq / dataroot_gt
            io_opt.pop(derived, None)
        self.io_backend_kwargs = io_opt
        self.gt_folder = str(self.opt['dataroot_gt'])
        self.lq_folder = str(self.opt['dataroot_lq'])
        self.filename_tmpl = self.opt.get('filename_tmpl')
        self.phase = self.opt.get('phase', 'val')
        self.check = bool(self.opt.get('check_pairs', True))
        if self.opt.get('scale', 1) != 1:
            raise ValueError(f'PairedLLIEDataset supports scale 1 only, got scale={self.opt["scale"]}')
        if self.phase == 'train':
            if 'gt_size' not in self.opt:
                raise KeyError("PairedLLIEDataset needs 'gt_size' in the train phase")
            self.gt_size = int(self.opt['gt_size'])

        if self.backend == 'lmdb':
            self.paths = self._paths_from_lmdb()
        elif self.backend == 'disk':
            self.paths = self._paths_from_folders()
        else:
            raise ValueError(f"io_backend type must be 'disk' or 'lmdb', got {self.backend!r}")
        self.file_client = None
        self._client_pid = None
        if self.phase == 'train':
            self._check_gt_size(self._known_sizes)

    def _check_gt_size(self, sizes):
        """Raise :class:`PairCheckError` naming ``gt_size`` when an image is too small for it.

        Reflect padding mirrors an image once when the pad is smaller than the side; a
        ``gt_size`` of more than twice a side would tile mirrored copies into patches that are
        mostly padding (and, far too large, fill the memory: 2048 on the demo's ~130 px images
        was killed at 24 GB). So every side must be at least ``(gt_size + 1) // 2``.

        Args:
            sizes (dict[str, tuple[int, int]]): Image (file or LMDB key) -> (h, w).
        """
        need = (self.gt_size + 1) // 2
        small = {name: hw for name, hw in sizes.items() if min(hw) < need}
        if not small:
            return
        name, (h, w) = min(small.items(), key=lambda item: min(item[1]))
        largest = 2 * min(min(hw) for hw in sizes.values())
        raise PairCheckError(
            [
                f'datasets.{self.opt.get("phase", "train")}.gt_size {self.gt_size} is more than twice the side of '
                f'{len(small)} of {len(sizes)} images (smallest: {name!r}, {h}x{w} h x w): their patches would be '
                f'mostly reflect padding. Use gt_size <= {largest}, or larger images.'
            ],
            f"the data of '{self.opt.get('name', 'train')}'",
        )

    def _paths_from_folders(self):
        for folder, label in ((self.lq_folder, 'dataroot_lq'), (self.gt_folder, 'dataroot_gt')):
            if not osp.isdir(folder):
                raise FileNotFoundError(f"{label} folder does not exist: '{folder}'")
        pairs = check_pairs(self.lq_folder, self.gt_folder, self.filename_tmpl, decode=self.check)
        self._known_sizes = {p.normal_path: p.shape[:2] for p in pairs if p.shape is not None}
        return [{'lq_path': p.low_path, 'gt_path': p.normal_path} for p in pairs]

    def _paths_from_lmdb(self):
        lq_meta = read_lmdb_meta_info(self.lq_folder)
        gt_meta = read_lmdb_meta_info(self.gt_folder)
        self._known_sizes = {key: hwc[:2] for key, hwc in gt_meta.items()}
        if self.check:
            problems = []
            for key in lq_meta:
                if key not in gt_meta:
                    problems.append(f"key '{key}' of '{self.lq_folder}' is missing from '{self.gt_folder}'")
                elif lq_meta[key][:2] != gt_meta[key][:2]:
                    lh, lw = lq_meta[key][:2]
                    gh, gw = gt_meta[key][:2]
                    problems.append(
                        f"size mismatch for key '{key}': {lh}x{lw} in '{self.lq_folder}' "
                        f"but {gh}x{gw} in '{self.gt_folder}' (h x w)"
                    )
            problems += [
                f"key '{key}' of '{self.gt_folder}' is missing from '{self.lq_folder}'"
                for key in gt_meta
                if key not in lq_meta
            ]
            if problems:
                raise PairCheckError(problems, 'the LMDB meta_info files')
        return [{'lq_path': key, 'gt_path': key} for key in sorted(lq_meta)]

    def lmdb_sources(self):
        return {'lq': self.lq_folder, 'gt': self.gt_folder}

    def __getitem__(self, index):
        lq_path = self.paths[index]['lq_path']
        gt_path = self.paths[index]['gt_path']
        img_lq = self._load(lq_path, 'lq')
        img_gt = self._load(gt_path, 'gt')
        if img_lq.shape != img_gt.shape:
            raise ValueError(
                f"size mismatch: lq '{lq_path}' is {img_lq.shape[0]}x{img_lq.shape[1]} "
                f"but gt '{gt_path}' is {img_gt.shape[0]}x{img_gt.shape[1]} (h x w)"
            )

        if self.phase == 'train':
            if gt_path not in self._known_sizes:  # not checked at init (check_pairs: false)
                self._check_gt_size({gt_path: img_gt.shape[:2]})
            img_gt, img_lq = _pad_to(img_gt, self.gt_size), _pad_to(img_lq, self.gt_size)
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.gt_size, 1, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))

        return {'lq': _to_tensor(img_lq), 'gt': _to_tensor(img_gt), 'lq_path': lq_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.paths)


__all__ = ['LazyFileClientMixin', 'PairedLLIEDataset', 'read_lmdb_meta_info']
