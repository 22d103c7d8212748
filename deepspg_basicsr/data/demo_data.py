"""Small synthetic low-light pairs made from the colour photographs inside scikit-image's wheel.

Layout written under ``root`` (LOL-v1 style, with a BasicSR LMDB copy)::

    root/LOL-v1/our485/{low,high}/<name>.png     training pairs (random crops, 128..192 px)
    root/LOL-v1/eval15/{low,high}/<name>.png     test pairs (whole photos, about 200x300)
    root/LOL-v1_lmdb/{our485,eval15}/{low,high}.lmdb
    root/demo_manifest.json                      seed, file list, darkening parameters

Training and test pairs come from disjoint photographs. The normal-light image is the 8-bit
photo (crop); its low-light twin is made "the LOL-v2-synthetic way": linearise (gamma 2.2),
scale the exposure by ``k`` and apply a gamma ``g`` (``k * x ** g``), add signal-dependent
Poisson-Gaussian noise (photon count ``peak`` at full scale, read noise ``sigma``, both in
linear units), back to sRGB, round to 8 bits. Everything is drawn from a NumPy generator seeded
by ``(seed, split, index)``, so a seed gives the same bytes on every run.
"""

import argparse
import json
import os
import shutil
from os import path as osp

import cv2
import numpy as np

from ..utils.image_io import write_png

DEFAULT_SEED = 20240601
MANIFEST = 'demo_manifest.json'
MANIFEST_VERSION = 1

TRAIN_PHOTOS = (
    'motorcycle_left.png',
    'motorcycle_right.png',
    'ihc.png',
    'retina.jpg',
    'hubble_deep_field.jpg',
)
# test photo -> (h, w); odd sizes on purpose, to exercise padding to a network's multiple
TEST_PHOTOS = {
    'astronaut.png': (227, 227),
    'chelsea.png': (201, 303),
    'coffee.png': (200, 300),
    'rocket.jpg': (213, 319),
}
NUM_TRAIN = 32
TRAIN_SIZE_RANGE = (128, 192)

EXPOSURE_RANGE = (0.03, 0.15)
GAMMA_RANGE = (1.0, 1.3)
PEAK_RANGE = (800.0, 4000.0)
READ_NOISE_RANGE = (5e-4, 2e-3)
SRGB_GAMMA = 2.2

SPLITS = ('our485', 'eval15')


def skimage_data_dir():
    """Folder of the sample images shipped inside the installed scikit-image wheel."""
    import skimage

    return osp.join(osp.dirname(skimage.__file__), 'data')


def _load_colour_photos(names):
    """{stem: BGR uint8 array} for the names that exist and are colour photographs."""
    folder = skimage_data_dir()
    photos = {}
    for name in names:
        path = osp.join(folder, name)
        if not osp.isfile(path):
            continue
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            continue
        spread = np.abs(np.diff(img.astype(np.int16), axis=2)).mean()
        if spread < 2.0:  # grey picture stored as RGB
            continue
        photos[osp.splitext(name)[0]] = img
    return photos


def darken(img, rng):
    """Synthesise a low-light image from a normal-light one.

    Args:
        img (ndarray): (h, w, 3) uint8 image (sRGB, any channel order).
        rng (numpy.random.Generator): Source of the random parameters and noise.

    Returns:
        tuple[ndarray, dict]: (h, w, 3) uint8 low-light image, and the parameters used
        (exposure ``k``, gamma ``g``, photon count ``peak``, read noise ``sigma``).
    """
    params = {
        'k': float(rng.uniform(*EXPOSURE_RANGE)),
        'g': float(rng.uniform(*GAMMA_RANGE)),
        'peak': float(rng.uniform(*PEAK_RANGE)),
        'sigma': float(rng.uniform(*READ_NOISE_RANGE)),
    }
    linear = (img.astype(np.float64) / 255.0) ** SRGB_GAMMA
    dark = params['k'] * linear ** params['g']
    noisy = rng.poisson(dark * params['peak']) / params['peak'] + rng.normal(0.0, params['sigma'], dark.shape)
    srgb = np.clip(noisy, 0.0, 1.0) ** (1.0 / SRGB_GAMMA)
    return np.round(srgb * 255.0).astype(np.uint8), params


def _random_crop(photo, rng):
    """A random crop of 128..192 px per side, taken from a window 1 to 3 times as large
    (area-resized), avoiding windows much darker than the photo (black borders)."""
    H, W = photo.shape[:2]
    h, w = (int(v) for v in rng.integers(TRAIN_SIZE_RANGE[0], TRAIN_SIZE_RANGE[1] + 1, size=2))
    f_max = max(1.0, min(H / h, W / w, 3.0))
    target = 0.6 * photo.mean()
    for _ in range(20):
        f = rng.uniform(1.0, f_max)
        ch, cw = min(H, int(round(h * f))), min(W, int(round(w * f)))
        top, left = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
        window = photo[top : top + ch, left : left + cw]
        if window.mean() >= target:
            break
    return cv2.resize(window, (w, h), interpolation=cv2.INTER_AREA)


def _resize_cover(photo, size):
    """Area-resize ``photo`` to cover ``size`` = (h, w), then centre-crop to it."""
    h, w = size
    H, W = photo.shape[:2]
    scale = max(h / H, w / W)
    rh, rw = max(h, int(round(H * scale))), max(w, int(round(W * scale)))
    resized = cv2.resize(photo, (rw, rh), interpolation=cv2.INTER_AREA)
    top, left = (rh - h) // 2, (rw - w) // 2
    return resized[top : top + h, left : left + w]


def _expected_files(manifest):
    files = [osp.join('LOL-v1', rel) for rel in manifest['files']]
    for split in SPLITS:
        for side in ('low', 'high'):
            lmdb = osp.join('LOL-v1_lmdb', split, f'{side}.lmdb')
            files += [osp.join(lmdb, 'data.mdb'), osp.join(lmdb, 'meta_info.txt')]
    return files


def is_complete(root, seed=DEFAULT_SEED):
    """Whether ``root`` holds the full demo data made with ``seed``."""
    manifest_path = osp.join(root, MANIFEST)
    if not osp.isfile(manifest_path):
        return False
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    if manifest.get('version') != MANIFEST_VERSION or manifest.get('seed') != seed:
        return False
    return all(osp.isfile(osp.join(root, rel)) for rel in _expected_files(manifest))


def make_demo_data(root='datasets/demo', seed=DEFAULT_SEED, force=False):
    """Write the demo data set (see the module docstring) under ``root``.

    Args:
        root (str): Output folder. Default: 'datasets/demo'.
        seed (int): Random seed; the same seed gives the same bytes. Default: DEFAULT_SEED.
        force (bool): Regenerate even when the output is complete. Default: False.

    Returns:
        dict: ``root``, ``lol_v1`` (PNG folder), ``lmdb`` (LMDB folder), ``train`` and ``test``
        (image names), ``generated`` (False when complete output was left as it was).
    """
    root = str(root)
    lol_dir, lmdb_dir = osp.join(root, 'LOL-v1'), osp.join(root, 'LOL-v1_lmdb')
    result = {'root': root, 'lol_v1': lol_dir, 'lmdb': lmdb_dir}
    if not force and is_complete(root, seed):
        with open(osp.join(root, MANIFEST)) as f:
            manifest = json.load(f)
        return dict(result, train=manifest['train'], test=manifest['test'], generated=False)

    train_photos = _load_colour_photos(TRAIN_PHOTOS)
    test_photos = _load_colour_photos(TEST_PHOTOS)
    if not train_photos or not test_photos:
        raise RuntimeError(
            f"scikit-image's sample photographs are missing from '{skimage_data_dir()}' "
            f'(need some of {TRAIN_PHOTOS} and of {tuple(TEST_PHOTOS)})'
        )

    manifest_path = osp.join(root, MANIFEST)
    if osp.exists(manifest_path):
        os.remove(manifest_path)
    for folder in (lol_dir, lmdb_dir):
        shutil.rmtree(folder, ignore_errors=True)
    for split in SPLITS:
        for side in ('low', 'high'):
            os.makedirs(osp.join(lol_dir, split, side))

    manifest = {'version': MANIFEST_VERSION, 'seed': seed, 'files': [], 'train': [], 'test': [], 'params': {}}

    def add_pair(split_idx, index, name, high):
        rng = np.random.default_rng([seed, split_idx, index])
        low, params = darken(high, rng)
        split = SPLITS[split_idx]
        for side, img in (('low', low), ('high', high)):
            write_png(osp.join(lol_dir, split, side, name), img, compression=1)
            manifest['files'].append(f'{split}/{side}/{name}')
        manifest['params'][f'{split}/{name}'] = params
        manifest['train' if split_idx == 0 else 'test'].append(name)

    stems = sorted(train_photos)
    for index in range(NUM_TRAIN):
        stem = stems[index % len(stems)]
        crop = _random_crop(train_photos[stem], np.random.default_rng([seed, 0, index, 1]))
        add_pair(0, index, f'{stem}_{index:02d}.png', crop)
    for index, (name, size) in enumerate(TEST_PHOTOS.items()):
        stem = osp.splitext(name)[0]
        if stem in test_photos:
            add_pair(1, index, f'{stem}.png', _resize_cover(test_photos[stem], size))

    from .lmdb_prepare import prepare_lmdb

    prepare_lmdb('lol_v1', lmdb_dir, root=lol_dir, force=True, progress=False)
    with open(manifest_path, 'w') as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return dict(result, train=manifest['train'], test=manifest['test'], generated=True)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description='Write the small synthetic LOL-v1-style demo data set.')
    parser.add_argument('--root', default='datasets/demo', help='output folder (default: datasets/demo)')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED, help=f'random seed (default: {DEFAULT_SEED})')
    parser.add_argument('--force', action='store_true', help='regenerate even when the output is complete')
    args = parser.parse_args(argv)
    info = make_demo_data(args.root, seed=args.seed, force=args.force)
    state = 'written' if info['generated'] else 'already complete, left as is'
    print(f'demo data {state}: {len(info["train"])} training and {len(info["test"])} test pairs')
    print(f'  images: {info["lol_v1"]}/{{our485,eval15}}/{{low,high}}')
    print(f'  lmdb:   {info["lmdb"]}/{{our485,eval15}}/{{low,high}}.lmdb')
    return 0
