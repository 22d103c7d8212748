"""Paired low-light / normal-light images made from real photographs, split by photo.

The normal-light image is a real 8-bit photograph resized to a working size; its low-light twin
is the same scene as a camera would record it with too little light:

1. sRGB (the IEC 61966-2-1 curve) -> linear light;
2. multiply by an exposure scale ``k`` (log-uniform in :data:`EXPOSURE_RANGE`, one per photo);
3. shot noise: ``Poisson(x * peak) / peak``, where ``peak`` is the photon count that a linear
   value of 1.0 would collect (log-uniform in :data:`PEAK_RANGE`, one per photo), so the noise
   variance is ``x / peak`` and grows with the signal;
4. read noise: additive Gaussian of standard deviation ``read_sigma`` in linear units
   (log-uniform in :data:`READ_SIGMA_RANGE`, one per photo), clipped to [0, 1];
5. linear -> sRGB, rounded to 8 bits.

Photos are split into a training split and an unseen test split *by photo* (a photo's pair is in
exactly one split), written in the LOL-v1 layout the project's loaders read::

    out/our485/{low,high}/<name>.png    training pairs
    out/eval15/{low,high}/<name>.png    unseen test pairs
    out/MANIFEST.json                   per photo: source file, Debian package and version,
                                        split, size, exposure and noise; seed, settings, command

Sources are either folders given by the user (every image in them is used) or, by default, the
Debian wallpaper folders, of which only the files owned by a package of
:data:`PHOTO_PACKAGES` and not matched by :data:`EXCLUDE_PATTERNS` are used (the packages also
ship drawings and abstract art; the exclusions were decided by looking at every file). The same
photo stored at several resolutions is kept once (:func:`deduplicate`). Every random draw comes
from a generator seeded by ``(seed, photo name)``, so one seed gives the same bytes on every run
and a photo keeps its darkening when others are added or removed.
"""

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from os import path as osp
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from ..utils.image_io import write_png

MANIFEST = 'MANIFEST.json'
MANIFEST_VERSION = 1
DEFAULT_OUT = 'datasets/photos/LOL-v1'
DEFAULT_SEED = 16
TRAIN_SPLIT, TEST_SPLIT = 'our485', 'eval15'

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')

DEFAULT_SOURCES = (
    '/usr/share/wallpapers',
    '/usr/share/backgrounds',
    '/usr/share/images/desktop-base',
    '/usr/share/lxqt/wallpapers',
)
# Debian packages whose wallpapers include real photographs (bookworm). Looked at and left out
# because every picture in them is drawn or abstract: gnome-backgrounds, sway-backgrounds,
# ukui-wallpapers, lomiri-wallpapers, desktop-base, xfdesktop4-data.
PHOTO_PACKAGES = (
    'plasma-workspace-wallpapers',
    'mate-backgrounds',
    'lomiri-wallpapers-16.04',
    'lomiri-wallpapers-20.04',
    'lxqt-themes',
)
# Files of PHOTO_PACKAGES that are not photographs (drawings, renders, abstract art, logos) or
# are previews of another file; fnmatch patterns on the full path.
EXCLUDE_PATTERNS = (
    '*/contents/screenshot.*',  # Plasma: preview of the theme's own image
    *(
        f'/usr/share/wallpapers/{theme}/*'
        for theme in """Altai Autumn Canopee Cascade Cluster Elarun Flow FlyingKonqui Honeywave IceCold Kay
        Kokkini MilkyWay Opal PastelHills Patak SafeLanding Shell Volna""".split()
    ),
    '/usr/share/backgrounds/mate/abstract/*',
    '/usr/share/backgrounds/mate/desktop/*',
    '/usr/share/backgrounds/analogpattern_by_Peter_Nerlich.jpg',
    '/usr/share/backgrounds/umang_by_Abhishek_Mudgal.jpg',
    '/usr/share/backgrounds/Fossa_by_Jasper_Roks.jpg',
    '/usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg',
    '/usr/share/backgrounds/Painting-Colors_by__herobrine7gamer.jpg',
    *(
        f'/usr/share/lxqt/wallpapers/{name}'
        for name in """kde-plasma.png lxqt-origami-green.png origami-*.png plasma-logo-*.png plasma_arch.png
        simple_blue_widescreen.png triangles*.png waves-*""".split()
    ),
)

WORK_SIZE = (600, 400)  # long side, short side: the frame a photo is fitted into (LOL-v1 is 600x400)
MIN_SHORT_SIDE = 256
EXPOSURE_RANGE = (0.02, 0.1)
PEAK_RANGE = (1000.0, 8000.0)
READ_SIGMA_RANGE = (5e-4, 2e-3)
TEST_FRACTION = 0.2
MIN_TEST = 15
HASH_MAX_DISTANCE = 5  # of 64 bits

_GENERIC_DIRS = {'contents', 'images', 'images_dark', 'wallpapers', 'backgrounds'}
_RESOLUTION = re.compile(r'^(.*?)[_-]?\d{3,5}x\d{3,5}(?:[_-]portrait)?$', re.IGNORECASE)


class PhotoPairsError(ValueError):
    """Raised for unusable sources or settings; the message names the folder or option."""


@dataclass
class Photo:
    """One source photograph (after de-duplication)."""

    path: str
    name: str
    shape: Tuple[int, int]
    package: Optional[str] = None
    duplicates: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------------- darkening


def srgb_to_linear(x):
    """The sRGB decoding curve (IEC 61966-2-1) on values in [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x):
    """The sRGB encoding curve (IEC 61966-2-1) on values in [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def draw_darkening(rng, exposure_range=EXPOSURE_RANGE, peak_range=PEAK_RANGE, read_sigma_range=READ_SIGMA_RANGE):
    """Draw one photo's darkening parameters, each log-uniform in its range.

    Args:
        rng (numpy.random.Generator): Random source.
        exposure_range (tuple[float, float]): Range of the exposure scale ``k``.
        peak_range (tuple[float, float]): Range of the photon count at linear 1.0.
        read_sigma_range (tuple[float, float]): Range of the read-noise standard deviation.

    Returns:
        dict: ``exposure``, ``peak``, ``read_sigma``.
    """
    out = {}
    for key, (lo, hi) in (('exposure', exposure_range), ('peak', peak_range), ('read_sigma', read_sigma_range)):
        if not 0 < lo <= hi:
            raise PhotoPairsError(f'{key} range must satisfy 0 < low <= high, got ({lo}, {hi})')
        out[key] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return out


def darken(img, exposure, peak, read_sigma, rng):
    """Camera-like low-light version of an 8-bit sRGB image (see the module docstring).

    Args:
        img (ndarray): (h, w, 3) uint8 image, sRGB, any channel order.
        exposure (float): Exposure scale applied in linear light.
        peak (float): Photon count collected at linear 1.0 (after the exposure); shot-noise
            variance is ``x / peak``.
        read_sigma (float): Standard deviation of the Gaussian read noise, linear units.
        rng (numpy.random.Generator): Source of the noise.

    Returns:
        ndarray: (h, w, 3) uint8 low-light image.
    """
    if img.dtype != np.uint8:
        raise PhotoPairsError(f'darken expects a uint8 image, got {img.dtype}')
    dark = srgb_to_linear(img / 255.0) * exposure
    noisy = rng.poisson(dark * peak) / peak + rng.normal(0.0, read_sigma, dark.shape)
    return np.round(linear_to_srgb(noisy) * 255.0).astype(np.uint8)


# ------------------------------------------------------------------------------ source photos


def fit_size(shape, work_size=WORK_SIZE, min_short=MIN_SHORT_SIDE):
    """Output (h, w) for a photo of ``shape``: fitted inside ``work_size`` (long, short side,
    whichever the photo's orientation), aspect kept, short side at least ``min_short``; never
    enlarged beyond the photo."""
    h, w = shape[:2]
    long_side, short_side = max(h, w), min(h, w)
    scale = min(work_size[0] / long_side, work_size[1] / short_side)
    scale = max(scale, min_short / short_side)
    scale = min(scale, 1.0)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def _photo_key(path):
    """A readable name for the photo at ``path``: its stem without a resolution suffix, or, when
    that is a bare resolution (Plasma's ``Theme/contents/images/1920x1080.jpg``), the nearest
    folder that is not generic."""
    stem = osp.splitext(osp.basename(path))[0]
    m = _RESOLUTION.match(stem)
    stem = m.group(1) if m else stem
    if not stem:
        parent = osp.dirname(path)
        while parent and osp.basename(parent).lower() in _GENERIC_DIRS | {''}:
            if osp.dirname(parent) == parent:
                break
            parent = osp.dirname(parent)
        stem = osp.basename(parent) or 'photo'
    return re.sub(r'[^A-Za-z0-9_-]', '_', stem)


def _group_folder(path):
    """The Plasma theme folder (``.../<Theme>``) of ``.../<Theme>/contents/images*/file``, else None."""
    parts = path.split(os.sep)
    if len(parts) >= 4 and parts[-3] == 'contents' and parts[-2].startswith('images'):
        return os.sep.join(parts[:-3])
    return None


def _scan(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        found += [osp.join(root, f) for f in files if not f.startswith('.') and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def list_images(folder):
    """All image files under ``folder`` (recursive, sorted, hidden names skipped).

    Raises:
        PhotoPairsError: when ``folder`` is missing or holds no image, naming it.
    """
    if not osp.isdir(folder):
        raise PhotoPairsError(f"photo source folder '{folder}' does not exist")
    found = _scan(folder)
    if not found:
        raise PhotoPairsError(f"photo source folder '{folder}' holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return found


def dpkg_owners(paths):
    """{path: Debian package} for the ``paths`` that a package owns (``dpkg -S``); empty without dpkg."""
    owners = {}
    if not paths or shutil.which('dpkg') is None:
        return owners
    for start in range(0, len(paths), 200):
        chunk = list(paths[start : start + 200])
        res = subprocess.run(['dpkg', '-S', *chunk], capture_output=True, text=True)
        for line in res.stdout.splitlines():
            pkgs, _, path = line.partition(': ')
            if path in chunk:
                owners[path] = pkgs.split(',')[0].split(':')[0].strip()
    missing = [p for p in paths if p not in owners and osp.realpath(p) != p]
    if missing:  # a path reached through a symlinked folder is known to dpkg by its real path
        real = dpkg_owners([osp.realpath(p) for p in missing])
        owners.update({p: real[osp.realpath(p)] for p in missing if osp.realpath(p) in real})
    return owners


def package_versions(packages):
    """{package: version} from ``dpkg-query -W`` (packages that are not installed are left out)."""
    packages = sorted(set(p for p in packages if p))
    if not packages or shutil.which('dpkg-query') is None:
        return {}
    res = subprocess.run(['dpkg-query', '-W', '-f=${Package}\t${Version}\n', *packages], capture_output=True, text=True)
    return dict(line.split('\t', 1) for line in res.stdout.splitlines() if '\t' in line)


def perceptual_hash(img):
    """64-bit difference hash (gradient signs of a 9x8 grey thumbnail) of a BGR or grey image."""
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def _centre_square(img):
    h, w = img.shape[:2]
    s = min(h, w)
    return img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]


def _image_shape(path):
    """(h, w) from the file header (no decoding), or None."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:  # noqa: BLE001  (any unreadable header: fall back to the decoded size)
        return None


def _read(path, reduced=False):
    """BGR uint8 image; ``reduced``: decoded at a quarter of the size unless that is under 64 px."""
    img = cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_4) if reduced else None
    if img is None or min(img.shape[:2]) < 64:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
    return img


def deduplicate(paths, max_distance=HASH_MAX_DISTANCE):
    """Keep one file per photo: files in the same Plasma theme folder are one photo, and so are
    files whose perceptual hashes (of the whole image, or of its centre square, for copies cropped
    to another aspect ratio) differ in at most ``max_distance`` of 64 bits. The largest file (in
    pixels) of a group is kept, a real file rather than a symbolic link to it.

    Args:
        paths (list[str]): Image files.
        max_distance (int): Largest Hamming distance between hashes of one photo.

    Returns:
        tuple[list[tuple[str, tuple, list[str]]], list[str]]: kept ``(path, (h, w), duplicates)``
        in input order, and unreadable files.
    """
    entries, unreadable, decoded = [], [], {}
    for path in paths:
        real = osp.realpath(path)  # wallpaper packages link many names to one file: decode it once
        if real not in decoded:
            img = _read(path, reduced=True)
            decoded[real] = None
            if img is not None:
                shape = _image_shape(path) or img.shape[:2]
                decoded[real] = (
                    tuple(int(v) for v in shape),
                    perceptual_hash(img),
                    perceptual_hash(_centre_square(img)),
                )
        if decoded[real] is None:
            unreadable.append(path)
            continue
        shape, *hashes = decoded[real]
        entries.append({'path': path, 'shape': shape, 'hashes': hashes, 'group': _group_folder(path), 'real': real})
    parent = list(range(len(entries)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(entries):
        for j in range(i):
            b = entries[j]
            same = a['group'] is not None and a['group'] == b['group']
            same = same or any(bin(x ^ y).count('1') <= max_distance for x, y in zip(a['hashes'], b['hashes']))
            if same:
                parent[find(i)] = find(j)
    groups: Dict[int, List[dict]] = {}
    for i, e in enumerate(entries):
        groups.setdefault(find(i), []).append(e)
    kept = []
    for members in groups.values():
        best = max(members, key=lambda e: (e['shape'][0] * e['shape'][1], e['path'] == e['real'], e['path']))
        kept.append((best['path'], best['shape'], sorted(e['path'] for e in members if e is not best)))
    order = {p: i for i, p in enumerate(paths)}
    return sorted(kept, key=lambda k: order[k[0]]), unreadable


def collect_photos(sources=None, min_short=MIN_SHORT_SIDE):
    """Find, filter and de-duplicate the source photos.

    Args:
        sources (list[str] | None): Folders whose every image is used; None for the Debian
            wallpaper folders of :data:`DEFAULT_SOURCES`, filtered by :data:`PHOTO_PACKAGES` and
            :data:`EXCLUDE_PATTERNS`.
        min_short (int): Photos whose short side is smaller are skipped.

    Returns:
        tuple[list[Photo], list[dict]]: photos (unique names, sorted by name) and skipped files
        (``path``, ``reason``).
    """
    skipped = []
    if sources is None:
        candidates = sorted({p for f in DEFAULT_SOURCES if osp.isdir(f) for p in _scan(f)})
        owners = dpkg_owners(candidates)
        paths = []
        for p in candidates:
            if owners.get(p) not in PHOTO_PACKAGES:
                skipped.append({'path': p, 'reason': f'package {owners.get(p)} is not in PHOTO_PACKAGES'})
            elif any(fnmatch.fnmatch(p, pat) for pat in EXCLUDE_PATTERNS):
                skipped.append({'path': p, 'reason': 'EXCLUDE_PATTERNS (not a photograph, or a preview)'})
            else:
                paths.append(p)
        if not paths:
            raise PhotoPairsError(
                f'no photographs found in the default sources {", ".join(DEFAULT_SOURCES)}: install the Debian '
                f'packages {", ".join(PHOTO_PACKAGES)} (apt-get install), or pass --src DIR with your own photos'
            )
    else:
        paths = sorted({osp.abspath(p) for folder in sources for p in list_images(folder)})
        owners = dpkg_owners(paths)
    kept, unreadable = deduplicate(paths)
    skipped += [{'path': p, 'reason': 'unreadable image'} for p in unreadable]
    photos, used = [], set()
    for path, shape, dups in kept:
        skipped += [{'path': d, 'reason': f'duplicate of {path}'} for d in dups]
        if min(shape) < min_short:
            skipped.append({'path': path, 'reason': f'short side {min(shape)} < {min_short}'})
            continue
        name = _photo_key(path)
        if name in used:
            name = f'{_photo_key(osp.dirname(path))}_{name}'
        base, n = name, 2
        while name in used:
            name, n = f'{base}_{n}', n + 1
        used.add(name)
        photos.append(Photo(path=path, name=name, shape=shape, package=owners.get(path), duplicates=dups))
    return sorted(photos, key=lambda p: p.name), skipped


def split_photos(names, seed, test_fraction=TEST_FRACTION, min_test=MIN_TEST):
    """Split photo names into (train, test), disjoint, by a seeded shuffle.

    The test split holds ``max(min_test, round(test_fraction * n))`` photos (all of them when
    ``test_fraction`` is 1); the rest train.

    Raises:
        PhotoPairsError: when there are too few photos, naming the count and what is needed.
    """
    names = sorted(names)
    if len(set(names)) != len(names):
        raise PhotoPairsError('photo names must be unique')
    if not 0 < test_fraction <= 1:
        raise PhotoPairsError(f'--test-fraction must be in (0, 1], got {test_fraction}')
    n = len(names)
    n_test = n if test_fraction >= 1 else max(min_test, int(round(test_fraction * n)))
    need = min_test if test_fraction >= 1 else min_test + 1
    if n < need or n_test > n or (test_fraction < 1 and n_test >= n):
        raise PhotoPairsError(
            f'found {n} distinct photos; need at least {need} ({min_test} for the unseen test split'
            + ('' if test_fraction >= 1 else ' and 1 for training')
            + '): add photos with --src, or lower --min-test'
        )
    order = np.random.default_rng([seed, 0x5917]).permutation(n)
    test = sorted(names[i] for i in order[:n_test])
    train = sorted(names[i] for i in order[n_test:])
    return train, test


# ----------------------------------------------------------------------------------- writing


def _photo_rng(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode('utf-8'))])


def _prepare_out(out):
    """Empty the generated parts of ``out``; refuse a non-empty folder that this module did not make."""
    if osp.isdir(out) and os.listdir(out) and not osp.isfile(osp.join(out, MANIFEST)):
        raise PhotoPairsError(f"output folder '{out}' is not empty and has no {MANIFEST}: choose another --out")
    for part in (MANIFEST, TRAIN_SPLIT, TEST_SPLIT):
        target = osp.join(out, part)
        if osp.isdir(target):
            shutil.rmtree(target)
        elif osp.exists(target):
            os.remove(target)
    for split in (TRAIN_SPLIT, TEST_SPLIT):
        for side in ('low', 'high'):
            os.makedirs(osp.join(out, split, side), exist_ok=True)


def make_photo_pairs(
    out=DEFAULT_OUT,
    sources=None,
    seed=DEFAULT_SEED,
    test_fraction=TEST_FRACTION,
    min_test=MIN_TEST,
    work_size=WORK_SIZE,
    min_short=MIN_SHORT_SIDE,
    exposure_range=EXPOSURE_RANGE,
    peak_range=PEAK_RANGE,
    read_sigma_range=READ_SIGMA_RANGE,
    command=None,
):
    """Write the paired real-photo data set (see the module docstring).

    Args:
        out (str): Output folder (LOL-v1 layout). Default: :data:`DEFAULT_OUT`.
        sources (list[str] | None): Photo folders; None for the Debian wallpapers.
        seed (int): Seed of the split and of every photo's darkening.
        test_fraction (float): Share of photos in the unseen test split (1: all of them).
        min_test (int): Fewest test photos.
        work_size (tuple[int, int]): (long side, short side) frame each photo is fitted into.
        min_short (int): Smallest short side of an output image (and of a usable source photo).
        exposure_range (tuple[float, float]): Range of the exposure scale (log-uniform).
        peak_range (tuple[float, float]): Range of the photon count at linear 1.0 (log-uniform).
        read_sigma_range (tuple[float, float]): Range of the read-noise sigma (log-uniform).
        command (str | None): Command line recorded in the manifest.

    Returns:
        dict: the manifest written to ``out/MANIFEST.json``.
    """
    photos, skipped = collect_photos(sources, min_short=min_short)
    train, test = split_photos([p.name for p in photos], seed, test_fraction, min_test)
    split_of = {**{n: TRAIN_SPLIT for n in train}, **{n: TEST_SPLIT for n in test}}
    versions = package_versions(p.package for p in photos)
    _prepare_out(out)
    records, means = [], {'low': [], 'high': []}
    for photo in photos:
        rng = _photo_rng(seed, photo.name)
        params = draw_darkening(rng, exposure_range, peak_range, read_sigma_range)
        img = _read(photo.path)
        h, w = fit_size(img.shape, work_size, min_short)
        high = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) if (h, w) != img.shape[:2] else img
        low = darken(high, rng=rng, **params)
        split = split_of[photo.name]
        for side, arr in (('low', low), ('high', high)):
            write_png(osp.join(out, split, side, f'{photo.name}.png'), arr)
            means[side].append(float(arr.mean() / 255.0))
        records.append(
            {
                'name': f'{photo.name}.png',
                'split': split,
                'source': photo.path,
                'source_size': list(photo.shape),
                'package': photo.package,
                'package_version': versions.get(photo.package),
                'duplicates': photo.duplicates,
                'size': [h, w],
                **params,
                'mean_low': round(means['low'][-1], 5),
                'mean_high': round(means['high'][-1], 5),
            }
        )
    per_package: Dict[str, Dict[str, int]] = {}
    for r in records:
        counts = per_package.setdefault(str(r['package']), {TRAIN_SPLIT: 0, TEST_SPLIT: 0})
        counts[r['split']] += 1
    manifest = {
        'version': MANIFEST_VERSION,
        'command': command,
        'seed': seed,
        'sources': list(sources) if sources is not None else list(DEFAULT_SOURCES),
        'filter': None if sources is not None else {'packages': PHOTO_PACKAGES, 'exclude': EXCLUDE_PATTERNS},
        'settings': {
            'test_fraction': test_fraction,
            'min_test': min_test,
            'work_size': list(work_size),
            'min_short': min_short,
            'exposure_range': list(exposure_range),
            'peak_range': list(peak_range),
            'read_sigma_range': list(read_sigma_range),
            'model': 'sRGB->linear, *exposure, Poisson(x*peak)/peak + N(0, read_sigma^2), clip, ->sRGB, uint8',
        },
        'packages': versions,
        'counts': {'train': len(train), 'test': len(test), 'per_package': per_package},
        'mean_brightness': {side: round(float(np.mean(v)), 5) if v else None for side, v in means.items()},
        'train': [f'{n}.png' for n in train],
        'test': [f'{n}.png' for n in test],
        'photos': records,
        'skipped': skipped,
    }
    with open(osp.join(out, MANIFEST), 'w') as f:
        json.dump(manifest, f, indent=1)
    return manifest


def _pair(text):
    parts = text.replace(',', ' ').split()
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers 'A,B', got '{text}'")
    return tuple(float(p) for p in parts)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        description='Make paired low-light / normal-light images from real photos, split by photo into '
        'our485 (train) and eval15 (unseen test). Default sources: the Debian wallpaper packages.'
    )
    parser.add_argument('--src', nargs='+', metavar='DIR', help='photo folders (every image is used)')
    parser.add_argument('--out', default=DEFAULT_OUT, help=f'output folder (default: {DEFAULT_OUT})')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED, help=f'random seed (default: {DEFAULT_SEED})')
    parser.add_argument('--test-fraction', type=float, default=TEST_FRACTION, help='share of unseen test photos')
    parser.add_argument('--min-test', type=int, default=MIN_TEST, help=f'fewest test photos (default: {MIN_TEST})')
    parser.add_argument('--size', type=int, nargs=2, default=WORK_SIZE, metavar=('LONG', 'SHORT'))
    parser.add_argument('--min-short', type=int, default=MIN_SHORT_SIDE, help='smallest short side')
    parser.add_argument('--exposure', type=_pair, default=EXPOSURE_RANGE, metavar='LO,HI')
    parser.add_argument('--peak', type=_pair, default=PEAK_RANGE, metavar='LO,HI', help='photons at linear 1.0')
    parser.add_argument('--read-sigma', type=_pair, default=READ_SIGMA_RANGE, metavar='LO,HI')
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    command = ' '.join(['python', *(shlex.quote(a) for a in [sys.argv[0], *(sys.argv[1:] if argv is None else argv)])])
    try:
        m = make_photo_pairs(
            out=args.out,
            sources=args.src,
            seed=args.seed,
            test_fraction=args.test_fraction,
            min_test=args.min_test,
            work_size=tuple(args.size),
            min_short=args.min_short,
            exposure_range=args.exposure,
            peak_range=args.peak,
            read_sigma_range=args.read_sigma,
            command=command,
        )
    except PhotoPairsError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'{m["counts"]["train"]} training and {m["counts"]["test"]} unseen test pairs -> {args.out}')
    for pkg, c in sorted(m['counts']['per_package'].items()):
        print(f'  {pkg} {m["packages"].get(pkg, "")}: {c[TRAIN_SPLIT]} train, {c[TEST_SPLIT]} test')
    mb = m['mean_brightness']
    print(f'  mean brightness: low {mb["low"]:.4f}, high {mb["high"]:.4f}; {len(m["skipped"])} files skipped')
    return 0


__all__ = [
    'PhotoPairsError',
    'collect_photos',
    'darken',
    'deduplicate',
    'draw_darkening',
    'fit_size',
    'linear_to_srgb',
    'make_photo_pairs',
    'split_photos',
    'srgb_to_linear',
]
