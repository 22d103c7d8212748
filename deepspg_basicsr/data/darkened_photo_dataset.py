"""Normal-light photos darkened afresh at every draw (``type: SPGDarkenedPhotoDataset``).

A fixed paired set (``datasets/make_photo_pairs.py``) gives every photo one darkening, so a
network trained on 33 photos sees 33 exposures and 33 noise draws however long it trains. This
data set reads only the normal-light photos and makes the low-light twin of each training crop
on the fly with the same camera model (:func:`~deepspg_basicsr.data.photo_pairs.darken`: sRGB to
linear, exposure scale, Poisson shot noise, Gaussian read noise, back to 8-bit sRGB), its
exposure and noise drawn log-uniformly from the given ranges at every item. The crop is taken
before the darkening (the camera model acts on each pixel alone, so darkening the crop equals
cropping the darkened photo, noise draws aside).

In the train phase the darkening parameters and the noise come from a generator seeded by one
draw of NumPy's global random state, which BasicSR seeds (``manual_seed``, and per worker), so a
run is reproducible and every epoch differs. In other phases whole photos are returned, each
darkened once with a generator seeded by ``(seed, photo name)``: a fixed validation set.
"""

import copy
import os
import zlib
from os import path as osp

import numpy as np
import torch
from basicsr.data.transforms import augment
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from .pair_check import decode_image
from .photo_pairs import EXPOSURE_RANGE, IMAGE_EXTENSIONS, PEAK_RANGE, READ_SIGMA_RANGE, darken, draw_darkening

_RANGE_KEYS = {'exposure_range': EXPOSURE_RANGE, 'peak_range': PEAK_RANGE, 'read_sigma_range': READ_SIGMA_RANGE}


def _to_tensor(img):
    """(h, w, 3) uint8 BGR -> (3, h, w) float32 RGB tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))).float() / 255.0


@DATASET_REGISTRY.register()
class SPGDarkenedPhotoDataset(data.Dataset):
    """Normal-light photos and low-light twins drawn afresh at every item (see the module docstring).

    Args:
        opt (dict): Config for the dataset. It contains the following keys:
            dataroot_gt (str): Folder of normal-light 8-bit photos (png, jpg, ...; alpha dropped).
            phase (str): ``'train'`` crops, augments and darkens afresh; anything else returns whole
                photos, each darkened once (fixed by ``seed`` and its name).
            gt_size (int): Training patch size (train phase). A photo with a side shorter than
                ``gt_size`` is refused at init, naming it.
            use_hflip (bool): Random horizontal flips (train phase). Default: False.
            use_rot (bool): Random vertical flips and transpositions (train phase). Default: False.
            exposure_range (list[float]): Range of the exposure scale in linear light, drawn
                log-uniformly. Default: the photo pairs' ``[0.02, 0.1]``.
            peak_range (list[float]): Range of the photon count at linear 1.0 (shot noise variance
                ``x / peak``). Default: ``[1000, 8000]``.
            read_sigma_range (list[float]): Range of the read-noise standard deviation, linear
                units. Default: ``[5e-4, 2e-3]``.
            seed (int): Seed of the fixed darkenings outside the train phase. Default: 0.
            scale (int): Must be 1 if given (BasicSR adds it).
            name (str): Dataset name used in logs.

    Returns (per item):
        dict: ``lq`` and ``gt``, (3, h, w) float32 RGB tensors in [0, 1]; ``lq_path`` and
        ``gt_path``, the photo's path; ``darkening``, the drawn ``exposure``, ``peak`` and
        ``read_sigma`` as a (3,) float64 tensor.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = copy.deepcopy(opt)
        name = self.opt.get('name', 'train')
        self.phase = self.opt.get('phase', 'val')
        if self.opt.get('scale', 1) != 1:
            raise ValueError(f'SPGDarkenedPhotoDataset supports scale 1 only, got scale={self.opt["scale"]}')
        if 'dataroot_gt' not in self.opt:
            raise KeyError(f"datasets.{self.phase}: SPGDarkenedPhotoDataset ('{name}') needs 'dataroot_gt'")
        self.gt_folder = str(self.opt['dataroot_gt'])
        if not osp.isdir(self.gt_folder):
            raise FileNotFoundError(f"datasets.{self.phase}.dataroot_gt folder does not exist: '{self.gt_folder}'")
        self.ranges = {}
        for key, default in _RANGE_KEYS.items():
            value = self.opt.get(key, default)
            if len(value) != 2 or not 0 < float(value[0]) <= float(value[1]):
                raise ValueError(f'datasets.{self.phase}.{key} must be [low, high] with 0 < low <= high, got {value}')
            self.ranges[key] = (float(value[0]), float(value[1]))
        self.seed = int(self.opt.get('seed', 0))
        self.paths = sorted(
            osp.join(self.gt_folder, f) for f in os.listdir(self.gt_folder) if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not self.paths:
            raise FileNotFoundError(f"datasets.{self.phase}.dataroot_gt '{self.gt_folder}' holds no image")
        self._cache = {}
        if self.phase == 'train':
            if 'gt_size' not in self.opt:
                raise KeyError(f"datasets.{self.phase}: SPGDarkenedPhotoDataset needs 'gt_size' in the train phase")
            self.gt_size = int(self.opt['gt_size'])
            for path in self.paths:
                h, w = self._read(path).shape[:2]
                if min(h, w) < self.gt_size:
                    raise ValueError(
                        f'datasets.{self.phase}.gt_size {self.gt_size} is larger than the photo '
                        f"'{path}' ({h}x{w} h x w): use a smaller gt_size"
                    )

    def _read(self, path):
        """The photo at ``path`` as (h, w, 3) uint8 BGR, decoded once per process."""
        if path not in self._cache:
            with open(path, 'rb') as f:
                img = decode_image(f.read(), path)
            if img is None or img.dtype != np.uint8:
                raise ValueError(f"cannot decode '{path}' as an 8-bit image")
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            self._cache[path] = np.ascontiguousarray(img[..., :3])
        return self._cache[path]

    def _darken(self, img, rng):
        params = draw_darkening(rng, *self.ranges.values())
        low = darken(img, rng=rng, **params)
        return low, torch.tensor([params['exposure'], params['peak'], params['read_sigma']], dtype=torch.float64)

    def __getitem__(self, index):
        path = self.paths[index]
        img = self._read(path)
        if self.phase == 'train':
            h, w = img.shape[:2]
            top = np.random.randint(0, h - self.gt_size + 1)
            left = np.random.randint(0, w - self.gt_size + 1)
            img = img[top : top + self.gt_size, left : left + self.gt_size]
            img = augment(img, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
            rng = np.random.default_rng(np.random.randint(2**31))
        else:
            name = osp.basename(path)
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode('utf-8'))])
        low, params = self._darken(np.ascontiguousarray(img), rng)
        return {'lq': _to_tensor(low), 'gt': _to_tensor(img), 'lq_path': path, 'gt_path': path, 'darkening': params}

    def __len__(self):
        return len(self.paths)


__all__ = ['SPGDarkenedPhotoDataset']
