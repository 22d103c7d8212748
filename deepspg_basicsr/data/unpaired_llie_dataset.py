"""Unpaired low-light images for zero-reference training (``type: UnpairedLLIEDataset``)."""

import copy
import glob
import random
from os import path as osp

from basicsr.data.transforms import augment
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from .pair_check import PairCheckError, _list_side, image_shape, read_image
from .paired_llie_dataset import LazyFileClientMixin, _pad_to, _to_tensor, read_lmdb_meta_info

_GLOB_CHARS = ('*', '?', '[')


def _random_crop(img, size):
    """A random ``size`` x ``size`` window of an (h, w, c) array at least that large (``random``,
    the generator BasicSR's own crops use, so a resumed run draws the same windows)."""
    h, w = img.shape[:2]
    top, left = random.randint(0, h - size), random.randint(0, w - size)
    return img[top : top + size, left : left + size]


def list_images(source, side='low'):
    """Image files of a folder or glob pattern, sorted, and the problems found listing them.

    Args:
        source (str): A folder (hidden entries ignored), or a glob pattern (``photos/*.jpg``,
            ``photos/**/*.png``; recursive).
        side (str): 'low' (low-light) or 'normal' (normal-light), for the messages.

    Returns:
        tuple[list[str], list[str]]: The files, and problems (missing folder, nothing matched,
        sub-folders and files that are not images, each named).
    """
    source = str(source)
    problems = []
    if any(ch in source for ch in _GLOB_CHARS):
        matches = sorted(glob.glob(source, recursive=True))
        if not matches:
            label = 'low-light' if side == 'low' else 'normal-light'
            return [], [f"no {label} files match the pattern '{source}'"]
        files, _ = _list_side(matches, side, problems)
    else:
        files, _ = _list_side(source, side, problems)
    return files, problems


def find_image_problems(files, min_size):
    """Decode every file; report those that do not decode or are smaller than ``min_size``.

    Args:
        files (list[str]): Image files.
        min_size (int): Smallest accepted height and width.

    Returns:
        list[str]: Problems, each naming the file.
    """
    problems = []
    for path in files:
        try:
            h, w = image_shape(read_image(path))[:2]
        except (ValueError, OSError) as err:
            problems.append(str(err))
            continue
        if min(h, w) < min_size:
            problems.append(f"image too small: '{path}' is {h}x{w} (h x w); min_size is {min_size}")
    return problems


@DATASET_REGISTRY.register()
class UnpairedLLIEDataset(LazyFileClientMixin, data.Dataset):
    """Low-light images without ground truth, read from a folder, a glob pattern or a BasicSR LMDB.

    For zero-reference training (:class:`~deepspg_basicsr.models.DeepSPGZeroRefModel`,
    ``docs/ZERO_REFERENCE.md``). Optionally a second set of *unrelated* normal-light images
    (``dataroot_ref``): each item then carries one of them, drawn at random in the train phase
    (the i-th one, cycling, in other phases), for losses that need a reference distribution
    (the exposure loss's ``target_level: ref``).

    Checks at init (``check_images``, default on), every problem reported at once in a
    :class:`~deepspg_basicsr.data.pair_check.PairCheckError` naming the file: a missing folder,
    a pattern that matches nothing, sub-folders or files that are not images, files that do not
    decode (corrupt, truncated), images smaller than ``min_size``. LMDB: keys and sizes come from
    ``meta_info.txt`` (sizes checked against ``min_size``); a key that does not decode is
    reported when it is read, naming the key and the LMDB folder.

    Images are decoded as by :class:`~deepspg_basicsr.data.PairedLLIEDataset` (8 / 16 bit, grey,
    alpha dropped, ``.npy`` as BGR). In the ``train`` phase a random ``crop_size`` patch is cut
    (an image smaller than ``crop_size`` is first reflect-padded at the bottom / right) and
    flipped / rotated; in other phases whole images are returned. The file client is opened
    lazily, once per worker; the given ``opt`` is copied, never modified.

    Args:
        opt (dict): Config for the dataset. It contains the following keys:
            dataroot_lq (str): Low-light folder, glob pattern, or ``*.lmdb`` folder (lmdb).
            dataroot_ref (str): Normal-light folder / pattern / ``*.lmdb`` folder, unrelated to
                the low-light images. Default: None (no ``ref`` in the items).
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}`` (both sets), plus FileClient
                options. Default: disk.
            phase (str): ``'train'`` crops and augments; anything else returns whole images.
            crop_size (int): Training patch size (train phase).
            use_hflip (bool): Random horizontal flips (train phase). Default: False.
            use_rot (bool): Random vertical flips and transpositions (train phase). Default: False.
            min_size (int): Smallest accepted image height / width. Default: 16.
            check_images (bool): Decode every file at init (disk). Default: True.
            scale (int): Must be 1 if given (BasicSR adds it).
            name (str): Dataset name used in logs.

    Returns (per item):
        dict: ``lq``, a (3, h, w) float32 RGB tensor in [0, 1], and ``lq_path`` (file path or
        LMDB key); with ``dataroot_ref`` also ``ref`` (3, h', w') and ``ref_path``.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = copy.deepcopy(opt)
        if 'dataroot_gt' in self.opt:
            raise ValueError(
                "UnpairedLLIEDataset has no ground truth: remove 'dataroot_gt' (use PairedLLIEDataset for pairs, "
                "or 'dataroot_ref' for unrelated normal-light images)"
            )
        if 'dataroot_lq' not in self.opt:
            raise KeyError("UnpairedLLIEDataset needs 'dataroot_lq' (a folder, a glob pattern or an LMDB folder)")
        io_opt = dict(self.opt.get('io_backend') or {'type': 'disk'})
        self.backend = io_opt.pop('type', 'disk')
        for derived in ('db_paths', 'client_keys'):
            io_opt.pop(derived, None)
        self.io_backend_kwargs = io_opt
        self.lq_folder = str(self.opt['dataroot_lq'])
        ref = self.opt.get('dataroot_ref')
        self.ref_folder = None if ref is None else str(ref)
        self.phase = self.opt.get('phase', 'val')
        self.min_size = int(self.opt.get('min_size', 16))
        if self.opt.get('scale', 1) != 1:
            raise ValueError(f'UnpairedLLIEDataset supports scale 1 only, got scale={self.opt["scale"]}')
        if self.phase == 'train':
            if 'crop_size' not in self.opt:
                raise KeyError("UnpairedLLIEDataset needs 'crop_size' in the train phase")
            self.crop_size = int(self.opt['crop_size'])
        if self.backend not in ('disk', 'lmdb'):
            raise ValueError(f"io_backend type must be 'disk' or 'lmdb', got {self.backend!r}")

        problems = []
        self.paths = self._scan(self.lq_folder, 'low', problems)
        self.ref_paths = [] if self.ref_folder is None else self._scan(self.ref_folder, 'normal', problems)
        if problems:
            where = f"'{self.lq_folder}'" + ('' if self.ref_folder is None else f" / '{self.ref_folder}'")
            raise PairCheckError(problems, where)
        self.file_client = None
        self._client_pid = None

    def _scan(self, source, side, problems):
        """Paths (disk) or keys (lmdb) of one set; problems appended to ``problems``."""
        if self.backend == 'lmdb':
            meta = read_lmdb_meta_info(source)
            for key, (h, w, _) in meta.items():
                if min(h, w) < self.min_size:
                    problems.append(
                        f"image too small: key '{key}' of the LMDB '{source}' is {h}x{w}; min_size is {self.min_size}"
                    )
            if not meta:
                problems.append(f"no images listed in '{osp.join(source, 'meta_info.txt')}'")
            return sorted(meta)
        files, found = list_images(source, side)
        problems += found
        if self.opt.get('check_images', True):
            problems += find_image_problems(files, self.min_size)
        return files

    def lmdb_sources(self):
        sources = {'lq': self.lq_folder}
        if self.ref_folder is not None:
            sources['ref'] = self.ref_folder
        return sources

    def __getitem__(self, index):
        paths = {'lq': self.paths[index]}
        if self.ref_folder is not None:
            i = random.randrange(len(self.ref_paths)) if self.phase == 'train' else index % len(self.ref_paths)
            paths['ref'] = self.ref_paths[i]
        item = {}
        for key, path in paths.items():
            img = self._load(path, key)
            if self.phase == 'train':
                if 2 * min(img.shape[:2]) < self.crop_size:  # the same bound as PairedLLIEDataset's gt_size
                    h, w = img.shape[:2]
                    raise PairCheckError(
                        [
                            f'datasets.train.crop_size {self.crop_size} is more than twice the side of {path!r} '
                            f'({h}x{w} h x w): its patches would be mostly reflect padding. Use crop_size <= '
                            f'{2 * min(h, w)}, or larger images.'
                        ],
                        f"the data of '{self.opt.get('name', 'train')}'",
                    )
                img = _random_crop(_pad_to(img, self.crop_size), self.crop_size)
                img = augment(img, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
            item[key], item[f'{key}_path'] = _to_tensor(img), path
        return item

    def __len__(self):
        return len(self.paths)


__all__ = ['UnpairedLLIEDataset', 'find_image_problems', 'list_images']
