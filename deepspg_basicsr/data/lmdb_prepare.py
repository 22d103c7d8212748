"""Convert published low-light data sets into BasicSR LMDB files.

Every split becomes two LMDB folders, ``low.lmdb`` (low-light, BasicSR's ``lq``) and
``high.lmdb`` (normal-light, BasicSR's ``gt``), in the format of
:mod:`basicsr.utils.lmdb_util`: each image is stored PNG-encoded (pixels as stored, 8 or 16 bit)
under a key, and ``meta_info.txt`` has one line ``<key>.png (h,w,c) <compress_level>`` per image.
The two LMDB folders of a split hold the same keys, so that BasicSR's ``paired_paths_from_lmdb``
and :class:`~deepspg_basicsr.data.paired_llie_dataset.PairedLLIEDataset` read them.

Supported inputs (``dataset`` name: input folder tree -> output tree under ``out``)::

    lol_v1       ROOT/our485/{low,high}, ROOT/eval15/{low,high}
                 -> our485/{low,high}.lmdb, eval15/{low,high}.lmdb
    lol_v2_real  ROOT[/Real_captured]/{Train,Test}/{Low,Normal}  -> {Train,Test}/{low,high}.lmdb
    lol_v2_syn   ROOT[/Synthetic]/{Train,Test}/{Low,Normal}      -> {Train,Test}/{low,high}.lmdb
    sid          ROOT/short_sid2/<scene>/*.npy, ROOT/long_sid2/<scene>/*.npy
                 -> {train,test}/{low,high}.lmdb
    smid         ROOT/SMID_LQ_np/<scene>/*.npy, ROOT/SMID_Long_np/<scene>/*.npy, ROOT/test_list.txt
                 -> {train,test}/{low,high}.lmdb
    folder       --low DIR --normal DIR  -> {low,high}.lmdb   (any flat paired folders)

SID and SMID follow our reading of Retinexformer's ``Dataset_SIDImage`` / ``Dataset_SMIDImage``:
each scene folder of the long-exposure side holds the ground truth (the first file in sorted
order; for SMID, names containing ``.ARW`` or ``half`` are skipped), and every file of the same
scene on the short-exposure side is a low-light input paired with it. SID scenes whose name
starts with ``1`` are the test split, those starting with ``0`` or ``2`` the training split
(others are skipped with a warning); SMID's test scenes are listed in ``test_list.txt``. The
``.npy`` arrays are taken to be 8-bit BGR (Retinexformer reverses their channels to get RGB).
Retinexformer resizes every SID / SMID image to 960x512 when loading it; pass
``resize=(960, 512)`` to store them that way. Pair keys are ``<scene>_<low stem>``; the
ground truth is stored once per low-light frame.

Keys are the pair keys of :mod:`~deepspg_basicsr.data.pair_check` (``low00001.png`` /
``normal00001.png`` -> ``00001``) with every character other than ``A-Za-z0-9_-`` replaced by
``_`` (BasicSR splits meta_info lines at spaces and dots).

All pairs are validated (:func:`~deepspg_basicsr.data.pair_check.inspect_pairs`) before
anything is written; the LMDB files are written into a hidden temporary folder next to ``out``
that is renamed to ``out`` at the end, so a failure leaves nothing behind.
"""

import argparse
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from os import path as osp
from typing import List, Optional, Tuple

import cv2
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

from .pair_check import (
    ImagePair,
    PairCheckError,
    image_shape,
    inspect_pairs,
    is_image_name,
    match_pairs,
    read_image,
)

logger = logging.getLogger('deepspg_basicsr')

DATASETS = ('lol_v1', 'lol_v2_real', 'lol_v2_syn', 'sid', 'smid', 'folder')


@dataclass
class Split:
    """One split to convert.

    Args:
        name (str): Output sub-folder under ``out`` ('' for the top level).
        pairs (list[ImagePair]): Its pairs.
    """

    name: str
    pairs: List[ImagePair] = field(default_factory=list)


def lmdb_key(key):
    """LMDB key of a pair key: characters other than ``A-Za-z0-9_-`` become ``_``."""
    return re.sub(r'[^A-Za-z0-9_\-]', '_', key)


def _subdir(parent, name):
    """``parent/name``, matching ``name`` case-insensitively when the exact name is absent."""
    exact = osp.join(parent, name)
    if osp.isdir(exact) or not osp.isdir(parent):
        return exact
    for entry in sorted(os.listdir(parent)):
        if entry.lower() == name.lower() and osp.isdir(osp.join(parent, entry)):
            return osp.join(parent, entry)
    return exact


def _flat_split(name, low_dir, normal_dir, problems, filename_tmpl=None):
    pairs, found = match_pairs(low_dir, normal_dir, filename_tmpl)
    problems += found
    return Split(name, pairs)


def collect_lol_v1(root, problems):
    """Splits of LOL-v1: ``root/{our485,eval15}/{low,high}``."""
    splits = []
    for name in ('our485', 'eval15'):
        base = _subdir(root, name)
        splits.append(_flat_split(name, _subdir(base, 'low'), _subdir(base, 'high'), problems))
    return splits


def collect_lol_v2(root, subset, problems):
    """Splits of LOL-v2: ``root[/subset]/{Train,Test}/{Low,Normal}``, subset ``Real_captured`` or
    ``Synthetic`` (``root`` may be the LOL-v2 folder or the subset folder itself)."""
    base = _subdir(root, subset)
    if not osp.isdir(base):
        base = root
    splits = []
    for name in ('Train', 'Test'):
        split_dir = _subdir(base, name)
        splits.append(_flat_split(name, _subdir(split_dir, 'Low'), _subdir(split_dir, 'Normal'), problems))
    return splits


def _scene_dirs(root, label, problems):
    if not osp.isdir(root):
        problems.append(f"{label} folder does not exist: '{root}'")
        return {}
    scenes = {}
    for entry in sorted(os.listdir(root)):
        if entry.startswith('.'):
            continue
        path = osp.join(root, entry)
        if osp.isdir(path):
            scenes[entry] = path
        else:
            problems.append(f"not a scene folder: '{path}' (expected one sub-folder per scene in '{root}')")
    if not scenes:
        problems.append(f"no scene folders in '{root}'")
    return scenes


def _scene_files(folder, problems, skip=None):
    files = []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith('.') or (skip is not None and skip(entry)):
            continue
        path = osp.join(folder, entry)
        if osp.isdir(path) or not is_image_name(entry):
            problems.append(f"not an image file: '{path}'")
        else:
            files.append(path)
    if not files:
        problems.append(f"no image files in scene folder '{folder}'")
    return files


def _scene_splits(low_root, normal_root, split_of, problems, normal_skip=None):
    """Pair every low-light file of a scene with the first normal-light file of that scene."""
    low_scenes = _scene_dirs(low_root, 'low-light', problems)
    normal_scenes = _scene_dirs(normal_root, 'normal-light', problems)
    splits = {}
    for scene in sorted(set(low_scenes) | set(normal_scenes)):
        if scene not in normal_scenes:
            problems.append(
                f"missing normal-light twin: scene folder '{low_scenes[scene]}' has no match in '{normal_root}'"
            )
            continue
        if scene not in low_scenes:
            problems.append(
                f"missing low-light twin: scene folder '{normal_scenes[scene]}' has no match in '{low_root}'"
            )
            continue
        split = split_of(scene)
        if split is None:
            continue
        normals = _scene_files(normal_scenes[scene], problems, normal_skip)
        lows = _scene_files(low_scenes[scene], problems)
        if not normals:
            continue
        pairs = splits.setdefault(split, Split(split)).pairs
        for low in lows:
            stem = osp.splitext(osp.basename(low))[0]
            pairs.append(ImagePair(f'{scene}_{stem}', low, normals[0]))
    return [splits[name] for name in ('train', 'test') if name in splits]


def collect_sid(root, problems):
    """Splits of SID as Retinexformer prepares it (see the module docstring)."""

    def split_of(scene):
        if scene[0] == '1':
            return 'test'
        if scene[0] in '02':
            return 'train'
        logger.warning(f"SID: skipping scene folder '{scene}' (name does not start with 0, 1 or 2)")
        return None

    return _scene_splits(_subdir(root, 'short_sid2'), _subdir(root, 'long_sid2'), split_of, problems)


def collect_smid(root, problems):
    """Splits of SMID as Retinexformer prepares it (see the module docstring)."""
    list_file = osp.join(root, 'test_list.txt')
    if not osp.isfile(list_file):
        problems.append(f"SMID test scene list does not exist: '{list_file}'")
        return []
    with open(list_file) as f:
        test_scenes = {line.strip() for line in f if line.strip()}

    def split_of(scene):
        return 'test' if scene in test_scenes else 'train'

    def skip_normal(name):
        return '.ARW' in name or 'half' in name

    return _scene_splits(_subdir(root, 'SMID_LQ_np'), _subdir(root, 'SMID_Long_np'), split_of, problems, skip_normal)


def collect_splits(dataset, root=None, low=None, normal=None, filename_tmpl=None):
    """Find the pairs of a data set, without decoding.

    Args:
        dataset (str): One of :data:`DATASETS`.
        root (str | None): Data set folder (all but ``'folder'``).
        low (str | None): Low-light folder (``'folder'`` only).
        normal (str | None): Normal-light folder (``'folder'`` only).
        filename_tmpl (str | None): See :func:`~deepspg_basicsr.data.pair_check.match_pairs`
            (``'folder'`` only).

    Returns:
        tuple[list[Split], list[str]]: Splits and the problems found.
    """
    problems = []
    if dataset == 'folder':
        if low is None or normal is None:
            raise ValueError("dataset 'folder' needs both a low-light and a normal-light folder")
        return [_flat_split('', str(low), str(normal), problems, filename_tmpl)], problems
    if dataset not in DATASETS:
        raise ValueError(f'unknown dataset {dataset!r}; choose one of {", ".join(DATASETS)}')
    if root is None:
        raise ValueError(f'dataset {dataset!r} needs a root folder')
    root = str(root)
    if not osp.isdir(root):
        return [], [f"data set folder does not exist: '{root}'"]
    if dataset == 'lol_v1':
        splits = collect_lol_v1(root, problems)
    elif dataset == 'lol_v2_real':
        splits = collect_lol_v2(root, 'Real_captured', problems)
    elif dataset == 'lol_v2_syn':
        splits = collect_lol_v2(root, 'Synthetic', problems)
    elif dataset == 'sid':
        splits = collect_sid(root, problems)
    else:
        splits = collect_smid(root, problems)
    return splits, problems


def _key_problems(split):
    problems, seen = [], {}
    for pair in split.pairs:
        key = lmdb_key(pair.key)
        if key in seen:
            problems.append(f"pairs '{seen[key].low_path}' and '{pair.low_path}' both map to the LMDB key '{key}'")
        else:
            seen[key] = pair
    return problems


def _encode(img, compress_level):
    ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise ValueError('PNG encoding failed')
    return buf.tobytes()


def _map_size(split, resize):
    total = 0
    for pair in split.pairs:
        for shape in (pair.low_shape, pair.shape):
            h, w = (resize[1], resize[0]) if resize else shape[:2]
            total += h * w * shape[2] * 2 + 8192  # 16-bit worst case, plus page overhead
    return int(total * 1.1) + 2**24


def write_split(split, split_dir, compress_level=1, resize=None, progress=True):
    """Write ``split_dir/low.lmdb`` and ``split_dir/high.lmdb`` for one validated split.

    Args:
        split (Split): Split whose pairs went through ``inspect_pairs`` (shapes known).
        split_dir (str): Output folder; must not hold the LMDB folders yet.
        compress_level (int): PNG compression level 0..9. Default: 1 (BasicSR's).
        resize (tuple[int] | None): (width, height) to resize every image to (bilinear, as
            Retinexformer's loader); None keeps the stored size. Default: None.
        progress (bool): Show a tqdm progress bar. Default: True.
    """
    os.makedirs(split_dir, exist_ok=True)
    map_size = _map_size(split, resize)
    makers = {
        side: LmdbMaker(osp.join(split_dir, f'{side}.lmdb'), map_size, 5000, compress_level) for side in ('low', 'high')
    }
    last = {}  # side -> (path, bytes, shape); SID / SMID repeat one ground truth per scene
    desc = f'Write {split.name or "lmdb"}'
    try:
        for pair in tqdm(split.pairs, desc=desc, unit='pair', disable=not progress):
            key = lmdb_key(pair.key)
            for side, path in (('low', pair.low_path), ('high', pair.normal_path)):
                if side not in last or last[side][0] != path:
                    img = read_image(path)
                    if resize:
                        img = cv2.resize(img, tuple(resize))
                    last[side] = (path, _encode(img, compress_level), image_shape(img))
                _, buf, shape = last[side]
                makers[side].put(buf, key, shape)
    finally:
        for maker in makers.values():
            maker.close()


def prepare_lmdb(
    dataset,
    out,
    root=None,
    low=None,
    normal=None,
    filename_tmpl=None,
    force=False,
    compress_level=1,
    resize: Optional[Tuple[int, int]] = None,
    progress=True,
):
    """Validate a data set and convert it into BasicSR LMDB folders under ``out``.

    Args:
        dataset (str): One of :data:`DATASETS` (see the module docstring for the layouts).
        out (str): Output folder (created; replaced only with ``force``).
        root (str | None): Data set folder, for every dataset but ``'folder'``.
        low (str | None): Low-light folder, for ``'folder'``.
        normal (str | None): Normal-light folder, for ``'folder'``.
        filename_tmpl (str | None): Low stem template, for ``'folder'`` (see ``match_pairs``).
        force (bool): Replace an existing ``out``. Default: False.
        compress_level (int): PNG compression level. Default: 1.
        resize (tuple[int] | None): (width, height) for every image, e.g. (960, 512) to match
            Retinexformer's SID / SMID protocol. Default: None.
        progress (bool): Show tqdm progress bars. Default: True.

    Returns:
        dict[str, int]: Number of pairs written per split name.

    Raises:
        FileExistsError: ``out`` exists and ``force`` is False.
        PairCheckError: The data has problems; nothing is written.
    """
    out = osp.abspath(str(out))
    if osp.exists(out) and not force:
        raise FileExistsError(f"output folder '{out}' already exists; pass force=True (--force) to replace it")
    splits, problems = collect_splits(dataset, root, low, normal, filename_tmpl)
    for split in splits:
        problems += inspect_pairs(split.pairs, progress)
        problems += _key_problems(split)
    if not splits and not problems:
        problems.append(f"no pairs found for dataset '{dataset}' in '{root}'")
    if problems:
        raise PairCheckError(problems, f"dataset '{dataset}'")

    parent, name = osp.split(out)
    os.makedirs(parent, exist_ok=True)
    tmp = osp.join(parent, f'.{name}.partial-{os.getpid()}')
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for split in splits:
            write_split(split, osp.join(tmp, split.name), compress_level, resize, progress)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {split.name: len(split.pairs) for split in splits}


def _replace(tmp, out):
    """Rename ``tmp`` to ``out``, replacing an existing ``out`` only once ``tmp`` is complete."""
    if not osp.exists(out):
        os.rename(tmp, out)
        return
    old = f'{tmp}.old'
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a paired low-light data set into BasicSR LMDB folders (low.lmdb / high.lmdb).',
        epilog='Examples:\n'
        '  %(prog)s --dataset lol_v1 --root data/LOL-v1 --out datasets/LOL-v1_lmdb\n'
        '  %(prog)s --dataset lol_v2_real --root data/LOL-v2 --out datasets/LOL-v2-real_lmdb\n'
        '  %(prog)s --dataset sid --root data/SID --out datasets/SID_lmdb --resize 960 512\n'
        '  %(prog)s --low my/low --normal my/normal --out datasets/my_lmdb',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--dataset', choices=DATASETS, help="layout of --root; implied 'folder' with --low/--normal")
    parser.add_argument('--root', help='data set folder (see docs/DATA.md for each layout)')
    parser.add_argument('--low', help="low-light folder ('folder' mode)")
    parser.add_argument('--normal', help="normal-light folder ('folder' mode)")
    parser.add_argument(
        '--filename-tmpl', default=None, help="low stem from normal stem, e.g. '{}_low' ('folder' mode)"
    )
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--force', action='store_true', help='replace an existing output folder')
    parser.add_argument('--compress-level', type=int, default=1, choices=range(10), metavar='0..9')
    parser.add_argument(
        '--resize', type=int, nargs=2, metavar=('W', 'H'), help='resize every image (SID/SMID: 960 512)'
    )
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    args = parser.parse_args(argv)
    if args.dataset is None:
        args.dataset = 'folder' if args.low or args.normal else None
    if args.dataset is None:
        parser.error('give --dataset with --root, or --low and --normal')
    if args.dataset == 'folder' and not (args.low and args.normal):
        parser.error("'folder' mode needs both --low and --normal")
    if args.dataset != 'folder' and not args.root:
        parser.error(f'--dataset {args.dataset} needs --root')
    return args


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        counts = prepare_lmdb(
            args.dataset,
            args.out,
            root=args.root,
            low=args.low,
            normal=args.normal,
            filename_tmpl=args.filename_tmpl,
            force=args.force,
            compress_level=args.compress_level,
            resize=args.resize,
            progress=not args.no_progress,
        )
    except (PairCheckError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        print('nothing was written.', file=sys.stderr)
        return 2
    for name, count in counts.items():
        where = osp.join(args.out, name)
        print(f'{where}: {count} pairs -> low.lmdb, high.lmdb')
    return 0
