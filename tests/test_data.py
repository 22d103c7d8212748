"""Tests of the data side: demo data, pair validation, LMDB prep and PairedLLIEDataset."""

import deepspg_basicsr  # noqa: F401, I001  (first: compat shims and registration before basicsr)

import copy
import os
import random
from os import path as osp

import cv2
import lmdb
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.metrics import calculate_psnr
from basicsr.models import build_model
from torch.utils.data import DataLoader

from deepspg_basicsr.data import PairCheckError, PairedLLIEDataset, check_pairs, find_pair_problems
from deepspg_basicsr.data.demo_data import make_demo_data
from deepspg_basicsr.data.lmdb_prepare import main as prepare_main
from deepspg_basicsr.data.lmdb_prepare import prepare_lmdb
from deepspg_basicsr.data.paired_llie_dataset import read_lmdb_meta_info

# ----------------------------------------------------------------------------------------- helpers


def _rand_img(h, w, c=3, seed=0, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    high = 65536 if dtype == np.uint16 else 256
    shape = (h, w) if c == 1 else (h, w, c)
    return rng.integers(0, high, size=shape).astype(dtype)


def _write(path, img):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return str(path)


def _make_lol_v1(root, n_train=3, n_test=2, sizes=((40, 52), (33, 47), (48, 48))):
    """Tiny LOL-v1 tree: our485/{low,high}, eval15/{low,high}, odd sizes."""
    for split, n in (('our485', n_train), ('eval15', n_test)):
        for i in range(n):
            h, w = sizes[i % len(sizes)]
            high = _rand_img(h, w, seed=100 + i + 10 * (split == 'eval15'))
            low = (high // 6).astype(np.uint8)
            _write(osp.join(root, split, 'high', f'{i + 1}.png'), high)
            _write(osp.join(root, split, 'low', f'{i + 1}.png'), low)
    return str(root)


def _dataset_opt(lq, gt, backend='disk', phase='val', **extra):
    opt = {
        'name': 'tiny',
        'type': 'PairedLLIEDataset',
        'dataroot_lq': str(lq),
        'dataroot_gt': str(gt),
        'io_backend': {'type': backend},
        'phase': phase,
        'scale': 1,
    }
    opt.update(extra)
    return opt


def _leftovers(parent, name):
    return [e for e in os.listdir(parent) if name in e]


# --------------------------------------------------------------------------------------- demo data


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    info = make_demo_data(str(root), seed=7)
    assert info['generated']
    return root


def _psnr(a, b):
    return calculate_psnr(a, b, crop_border=0)


def test_demo_layout_sizes_and_darkness(demo_root):
    lol = demo_root / 'LOL-v1'
    train = sorted(os.listdir(lol / 'our485' / 'high'))
    test = sorted(os.listdir(lol / 'eval15' / 'high'))
    assert 24 <= len(train) <= 40 and 4 <= len(test) <= 5
    assert train == sorted(os.listdir(lol / 'our485' / 'low'))
    assert test == sorted(os.listdir(lol / 'eval15' / 'low'))
    # disjoint source photographs: train names are '<photo>_<index>.png', test names '<photo>.png'
    train_sources = {name.rsplit('_', 1)[0] for name in train}
    test_sources = {osp.splitext(name)[0] for name in test}
    assert train_sources.isdisjoint(test_sources)

    for split, names, lo, hi in (('our485', train, 128, 192), ('eval15', test, 190, 330)):
        psnrs = []
        for name in names:
            high = cv2.imread(str(lol / split / 'high' / name), cv2.IMREAD_UNCHANGED)
            low = cv2.imread(str(lol / split / 'low' / name), cv2.IMREAD_UNCHANGED)
            assert high.dtype == np.uint8 and high.ndim == 3 and high.shape == low.shape
            assert lo <= high.shape[0] <= hi and lo <= high.shape[1] <= hi
            assert low.mean() < 0.6 * high.mean()
            psnrs.append(_psnr(low, high))
        assert np.mean(psnrs) < 18.0
        if split == 'eval15':
            assert max(psnrs) < 20.0
    odd = [cv2.imread(str(lol / 'eval15' / 'high' / n)).shape[:2] for n in test]
    assert any(h % 2 or w % 2 for h, w in odd)


def test_demo_reproducible_and_idempotent(demo_root, tmp_path):
    again = make_demo_data(str(tmp_path / 'again'), seed=7)
    other = make_demo_data(str(tmp_path / 'other'), seed=8)
    rel_files = []
    for dirpath, _, files in os.walk(demo_root / 'LOL-v1'):
        rel_files += [osp.relpath(osp.join(dirpath, f), demo_root) for f in files]
    assert len(rel_files) == 2 * (len(again['train']) + len(again['test']))
    differ = 0
    for rel in rel_files:
        ref = (demo_root / rel).read_bytes()
        assert (tmp_path / 'again' / rel).read_bytes() == ref, rel
        differ += (tmp_path / 'other' / rel).read_bytes() != ref
    assert differ > 0 and other['train'] == again['train']

    # complete output + no force: nothing is rewritten
    marker = tmp_path / 'again' / 'LOL-v1' / 'eval15' / 'low' / again['test'][0]
    mtime = marker.stat().st_mtime_ns
    assert make_demo_data(str(tmp_path / 'again'), seed=7)['generated'] is False
    assert marker.stat().st_mtime_ns == mtime
    # an incomplete output is regenerated identically
    marker.unlink()
    assert make_demo_data(str(tmp_path / 'again'), seed=7)['generated'] is True
    assert marker.read_bytes() == (demo_root / osp.relpath(marker, tmp_path / 'again')).read_bytes()


def test_demo_lmdb_decodes_to_png_pixels(demo_root):
    for split in ('our485', 'eval15'):
        for side in ('low', 'high'):
            db = demo_root / 'LOL-v1_lmdb' / split / f'{side}.lmdb'
            meta = read_lmdb_meta_info(str(db))
            lines = (db / 'meta_info.txt').read_text().splitlines()
            assert all(line.endswith(' 1') and '.png (' in line for line in lines)
            pngs = sorted(os.listdir(demo_root / 'LOL-v1' / split / side))
            assert sorted(meta) == [osp.splitext(n)[0] for n in pngs]
            env = lmdb.open(str(db), readonly=True, lock=False)
            with env.begin() as txn:
                for key, shape in meta.items():
                    img = cv2.imdecode(np.frombuffer(txn.get(key.encode('ascii')), np.uint8), cv2.IMREAD_UNCHANGED)
                    png = cv2.imread(str(demo_root / 'LOL-v1' / split / side / f'{key}.png'), cv2.IMREAD_UNCHANGED)
                    assert img.shape == shape == png.shape
                    np.testing.assert_array_equal(img, png)
            env.close()


# ------------------------------------------------------------------------- prep + dataset agreement


@pytest.fixture
def tiny_lol(tmp_path):
    root = _make_lol_v1(tmp_path / 'LOL-v1')
    out = tmp_path / 'LOL-v1_lmdb'
    counts = prepare_lmdb('lol_v1', str(out), root=root, progress=False)
    assert counts == {'our485': 3, 'eval15': 2}
    return tmp_path


@pytest.mark.parametrize('phase', ['val', 'train'])
def test_disk_and_lmdb_give_identical_items(tiny_lol, phase):
    extra = {'gt_size': 32, 'use_hflip': True, 'use_rot': True} if phase == 'train' else {}
    disk_opt = _dataset_opt(tiny_lol / 'LOL-v1/our485/low', tiny_lol / 'LOL-v1/our485/high', 'disk', phase, **extra)
    lmdb_opt = _dataset_opt(
        tiny_lol / 'LOL-v1_lmdb/our485/low.lmdb',
        tiny_lol / 'LOL-v1_lmdb/our485/high.lmdb',
        'lmdb',
        phase,
        **extra,
    )
    frozen = copy.deepcopy(lmdb_opt)
    disk, db = build_dataset(disk_opt), PairedLLIEDataset(lmdb_opt)
    assert len(disk) == len(db) == 3
    for i in range(len(disk)):
        random.seed(i)
        a = disk[i]
        random.seed(i)
        b = db[i]
        assert a['lq_path'].endswith(f'low/{b["lq_path"]}.png') and b['gt_path'] == b['lq_path']
        for k in ('lq', 'gt'):
            assert a[k].dtype == torch.float32 and a[k].shape[0] == 3
            assert 0.0 <= a[k].min() and a[k].max() <= 1.0
            assert torch.equal(a[k], b[k])
        if phase == 'train':
            assert a['lq'].shape == (3, 32, 32)
        else:
            high = cv2.imread(a['gt_path'])[..., ::-1].transpose(2, 0, 1) / 255.0
            np.testing.assert_allclose(a['gt'].numpy(), high, atol=1e-6)
    assert lmdb_opt == frozen  # the caller's options are never mutated


def test_srmodel_validation_psnr_disk_equals_lmdb(tiny_lol):
    torch.manual_seed(0)
    opt = {
        'name': 'data_test',
        'model_type': 'SRModel',
        'scale': 1,
        'num_gpu': 0,
        'is_train': False,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'network_g': {
            'type': 'SRVGGNetCompact',
            'num_in_ch': 3,
            'num_out_ch': 3,
            'num_feat': 4,
            'num_conv': 2,
            'upscale': 1,
            'act_type': 'prelu',
        },
        'path': {'pretrain_network_g': None, 'strict_load_g': True},
        'val': {
            'save_img': False,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}},
        },
    }
    model = build_model(opt)
    results = {}
    for backend, lq, gt in (
        ('disk', 'LOL-v1/eval15/low', 'LOL-v1/eval15/high'),
        ('lmdb', 'LOL-v1_lmdb/eval15/low.lmdb', 'LOL-v1_lmdb/eval15/high.lmdb'),
    ):
        dataset = build_dataset(_dataset_opt(tiny_lol / lq, tiny_lol / gt, backend))
        loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)
        model.validation(loader, current_iter=1, tb_logger=None, save_img=False)
        results[backend] = model.metric_results['psnr']
    assert np.isfinite(results['disk']) and results['disk'] > 0
    assert results['disk'] == results['lmdb']


def test_lmdb_workers_open_their_own_client(tiny_lol):
    opt = _dataset_opt(tiny_lol / 'LOL-v1_lmdb/eval15/low.lmdb', tiny_lol / 'LOL-v1_lmdb/eval15/high.lmdb', 'lmdb')
    dataset = PairedLLIEDataset(opt)
    assert dataset.file_client is None  # opened lazily
    first = dataset[0]['lq']
    assert dataset.file_client is not None
    loader = DataLoader(dataset, batch_size=1, num_workers=1)
    assert torch.equal(next(iter(loader))['lq'][0], first)


# -------------------------------------------------------------------------------- decoding details


def test_grey_16bit_rgba_and_small_images(tmp_path):
    grey = _rand_img(20, 30, c=1, seed=1)
    deep = _rand_img(20, 30, seed=2, dtype=np.uint16)
    rgba = _rand_img(20, 30, c=4, seed=3)
    for name, img in (('grey', grey), ('deep', deep), ('rgba', rgba)):
        _write(tmp_path / 'low' / f'{name}.png', img)
        _write(tmp_path / 'high' / f'{name}.png', img)
    dataset = PairedLLIEDataset(_dataset_opt(tmp_path / 'low', tmp_path / 'high'))
    items = {osp.basename(it['lq_path'])[:-4]: it for it in (dataset[i] for i in range(len(dataset)))}
    g = items['grey']['lq']
    assert g.shape == (3, 20, 30) and torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    np.testing.assert_allclose(g[0].numpy(), grey / 255.0, atol=1e-7)
    np.testing.assert_allclose(items['deep']['lq'].numpy(), deep[..., ::-1].transpose(2, 0, 1) / 65535.0, atol=1e-7)
    assert items['deep']['lq'].max() > 0.99  # not squeezed into [0, 1/257]
    np.testing.assert_allclose(items['rgba']['gt'].numpy(), rgba[..., 2::-1].transpose(2, 0, 1) / 255.0, atol=1e-7)

    # training crops larger than the image: reflect-padded to gt_size (up to twice the shorter side)
    train = PairedLLIEDataset(_dataset_opt(tmp_path / 'low', tmp_path / 'high', phase='train', gt_size=40))
    item = train[0]
    assert item['lq'].shape == item['gt'].shape == (3, 40, 40)


def test_lol_v2_prefix_pairing_and_preset(tmp_path):
    root = tmp_path / 'LOL-v2'
    for split, ids in (('Train', (1, 2, 3)), ('Test', (690,))):
        for i in ids:
            img = _rand_img(24, 36, seed=i)
            _write(root / 'Real_captured' / split / 'Low' / f'low{i:05d}.png', img // 5)
            _write(root / 'Real_captured' / split / 'Normal' / f'normal{i:05d}.png', img)
    pairs = check_pairs(root / 'Real_captured/Train/Low', root / 'Real_captured/Train/Normal')
    assert [p.key for p in pairs] == ['00001', '00002', '00003']
    assert pairs[0].low_path.endswith('low00001.png') and pairs[0].normal_path.endswith('normal00001.png')

    out = tmp_path / 'lmdb'
    assert prepare_lmdb('lol_v2_real', str(out), root=str(root), progress=False) == {'Train': 3, 'Test': 1}
    assert list(read_lmdb_meta_info(str(out / 'Test' / 'high.lmdb'))) == ['00690']
    disk = PairedLLIEDataset(_dataset_opt(root / 'Real_captured/Train/Low', root / 'Real_captured/Train/Normal'))
    db = PairedLLIEDataset(_dataset_opt(out / 'Train/low.lmdb', out / 'Train/high.lmdb', 'lmdb'))
    assert torch.equal(disk[2]['lq'], db[2]['lq']) and torch.equal(disk[2]['gt'], db[2]['gt'])


def test_sid_layout_many_to_one(tmp_path):
    root = tmp_path / 'SID'
    gts = {}
    for scene in ('00001', '10003', '20005'):
        gts[scene] = _rand_img(16, 24, seed=int(scene))
        os.makedirs(root / 'long_sid2' / scene)
        os.makedirs(root / 'short_sid2' / scene)
        np.save(root / 'long_sid2' / scene / f'{scene}_00_10s.npy', gts[scene])
        for j, exposure in enumerate(('0.04s', '0.1s')):
            np.save(root / 'short_sid2' / scene / f'{scene}_{j:02d}_{exposure}.npy', gts[scene] // (3 + j))
    out = tmp_path / 'SID_lmdb'
    assert prepare_lmdb('sid', str(out), root=str(root), progress=False) == {'train': 4, 'test': 2}
    meta = read_lmdb_meta_info(str(out / 'test' / 'low.lmdb'))
    assert list(meta) == ['10003_10003_00_0_04s', '10003_10003_01_0_1s']
    db = PairedLLIEDataset(_dataset_opt(out / 'train/low.lmdb', out / 'train/high.lmdb', 'lmdb'))
    item = db[3]
    np.testing.assert_allclose(item['gt'].numpy(), gts['20005'][..., ::-1].transpose(2, 0, 1) / 255.0, atol=1e-7)
    np.testing.assert_allclose(item['lq'].numpy(), (gts['20005'] // 4)[..., ::-1].transpose(2, 0, 1) / 255.0, atol=1e-7)
    # Retinexformer's SID protocol resizes to 960x512; here 12x8
    out2 = tmp_path / 'SID_small'
    prepare_lmdb('sid', str(out2), root=str(root), resize=(12, 8), progress=False)
    assert set(read_lmdb_meta_info(str(out2 / 'train' / 'high.lmdb')).values()) == {(8, 12, 3)}


# ------------------------------------------------------------------------------------- bad layouts


def _break_missing_low_twin(root):
    _write(osp.join(root, 'eval15', 'high', 'orphan_high.png'), _rand_img(40, 52))
    return ['orphan_high.png']


def _break_missing_normal_twin(root):
    _write(osp.join(root, 'our485', 'low', 'orphan_low.png'), _rand_img(40, 52))
    return ['orphan_low.png']


def _break_size(root):
    _write(osp.join(root, 'our485', 'low', '2.png'), _rand_img(41, 47))
    return ['2.png', '41x47', '33x47']


def _break_corrupt(root):
    with open(osp.join(root, 'our485', 'high', '1.png'), 'wb') as f:
        f.write(b'this is not a png at all')
    return ['1.png', 'corrupt']


def _break_truncated(root):
    path = osp.join(root, 'eval15', 'low', '2.png')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[: len(data) // 2])
    return ['2.png', 'truncated']


def _break_non_image(root):
    with open(osp.join(root, 'our485', 'low', 'notes.txt'), 'w') as f:
        f.write('hello')
    return ['notes.txt', 'not an image']


BREAKERS = {
    'missing_low_twin': _break_missing_low_twin,
    'missing_normal_twin': _break_missing_normal_twin,
    'size_mismatch': _break_size,
    'corrupt': _break_corrupt,
    'truncated': _break_truncated,
    'non_image': _break_non_image,
}


@pytest.mark.parametrize('breaker', sorted(BREAKERS))
def test_broken_layout_clear_error_and_nothing_written(tmp_path, breaker, capsys):
    root = _make_lol_v1(tmp_path / 'LOL-v1')
    expected = BREAKERS[breaker](root)
    out = tmp_path / 'out_lmdb'
    with pytest.raises(PairCheckError) as err:
        prepare_lmdb('lol_v1', str(out), root=root, progress=False)
    for text in expected:
        assert text in str(err.value)
    assert len(err.value.problems) == 1
    assert not out.exists() and _leftovers(tmp_path, 'out_lmdb') == []
    # the command line says the same and exits with status 2
    assert prepare_main(['--dataset', 'lol_v1', '--root', root, '--out', str(out), '--no-progress']) == 2
    assert expected[0] in capsys.readouterr().err
    assert not out.exists()


def test_every_problem_reported_at_once(tmp_path):
    root = _make_lol_v1(tmp_path / 'LOL-v1')
    expected = [text for breaker in BREAKERS.values() for text in breaker(root)]
    problems = find_pair_problems(osp.join(root, 'our485', 'low'), osp.join(root, 'our485', 'high'))
    problems += find_pair_problems(osp.join(root, 'eval15', 'low'), osp.join(root, 'eval15', 'high'))
    assert len(problems) == len(BREAKERS)
    with pytest.raises(PairCheckError) as err:
        prepare_lmdb('lol_v1', str(tmp_path / 'out'), root=root, progress=False)
    assert len(err.value.problems) == len(BREAKERS)
    for text in expected:
        assert text in str(err.value)
    # the dataset validates the same way at init
    with pytest.raises(PairCheckError, match='notes.txt'):
        PairedLLIEDataset(_dataset_opt(osp.join(root, 'our485', 'low'), osp.join(root, 'our485', 'high')))


def test_prep_refuses_existing_output_unless_forced(tiny_lol):
    out = tiny_lol / 'LOL-v1_lmdb'
    with pytest.raises(FileExistsError, match='LOL-v1_lmdb'):
        prepare_lmdb('lol_v1', str(out), root=str(tiny_lol / 'LOL-v1'), progress=False)
    os.remove(tiny_lol / 'LOL-v1' / 'eval15' / 'low' / '1.png')
    with pytest.raises(PairCheckError):  # a failed forced run keeps the old output
        prepare_lmdb('lol_v1', str(out), root=str(tiny_lol / 'LOL-v1'), force=True, progress=False)
    assert len(read_lmdb_meta_info(str(out / 'eval15' / 'low.lmdb'))) == 2
    os.remove(tiny_lol / 'LOL-v1' / 'eval15' / 'high' / '1.png')
    prepare_lmdb('lol_v1', str(out), root=str(tiny_lol / 'LOL-v1'), force=True, progress=False)
    assert list(read_lmdb_meta_info(str(out / 'eval15' / 'low.lmdb'))) == ['2']
    assert _leftovers(tiny_lol, '.LOL-v1_lmdb') == []


def test_lmdb_meta_mismatch_and_missing_key(tiny_lol):
    low_db = tiny_lol / 'LOL-v1_lmdb/eval15/low.lmdb'
    high_db = tiny_lol / 'LOL-v1_lmdb/eval15/high.lmdb'
    with open(low_db / 'meta_info.txt', 'a') as f:
        f.write('ghost.png (40,52,3) 1\n')
    with pytest.raises(PairCheckError, match='ghost'):
        PairedLLIEDataset(_dataset_opt(low_db, high_db, 'lmdb'))
    with open(high_db / 'meta_info.txt', 'a') as f:
        f.write('ghost.png (40,52,3) 1\n')
    dataset = PairedLLIEDataset(_dataset_opt(low_db, high_db, 'lmdb'))
    index = [p['lq_path'] for p in dataset.paths].index('ghost')
    with pytest.raises(KeyError) as err:
        dataset[index]
    assert 'ghost' in str(err.value) and str(low_db) in str(err.value)


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere_low'):
        PairedLLIEDataset(_dataset_opt(tmp_path / 'nowhere_low', tmp_path))
    with pytest.raises(FileNotFoundError, match='meta_info'):
        PairedLLIEDataset(_dataset_opt(tmp_path / 'a.lmdb', tmp_path / 'b.lmdb', 'lmdb'))
    with pytest.raises(PairCheckError, match='SID_missing'):
        prepare_lmdb('lol_v1', str(tmp_path / 'out'), root=str(tmp_path / 'SID_missing'), progress=False)
