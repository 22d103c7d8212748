"""Tests of the real-photo pair maker: darkening model, de-duplication, split, layout, manifest."""

import deepspg_basicsr  # noqa: F401, I001  (first: compat shims and registration before basicsr)

import json
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import skimage.data

from deepspg_basicsr.data import photo_pairs as pp

# ----------------------------------------------------------------------------------------- helpers


def _write(path, img):
    os.makedirs(osp.dirname(str(path)), exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return str(path)


def _synthetic(seed, h=48, w=64):
    """A distinct smooth colour image (random 4x5 grid, bicubic-upsampled)."""
    grid = np.random.default_rng(seed).integers(0, 256, size=(4, 5, 3)).astype(np.uint8)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _photo_folder(root, n, prefix='img'):
    for i in range(n):
        _write(osp.join(root, f'{prefix}{i:02d}.png'), _synthetic(i))
    return str(root)


def _make(out, src, **kw):
    kw = {'seed': 3, 'work_size': (64, 48), 'min_short': 32, **kw}
    return pp.make_photo_pairs(out=str(out), sources=[str(src)], **kw)


# --------------------------------------------------------------------------------------- darkening


def test_srgb_curves_invert_and_match_reference_points():
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(pp.linear_to_srgb(pp.srgb_to_linear(x)), x, atol=1e-12)
    assert pp.srgb_to_linear(0.5) == pytest.approx(0.21404, abs=1e-5)
    assert pp.srgb_to_linear(0.04045) == pytest.approx(0.04045 / 12.92)


def test_darken_scales_linear_light_by_the_exposure():
    img = cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR)
    low = pp.darken(img, exposure=0.1, peak=4000.0, read_sigma=1e-3, rng=np.random.default_rng(0))
    assert low.dtype == np.uint8 and low.shape == img.shape
    ratio = pp.srgb_to_linear(low / 255.0).mean() / pp.srgb_to_linear(img / 255.0).mean()
    assert ratio == pytest.approx(0.1, rel=0.03)
    assert low.mean() < 0.4 * img.mean()


def test_darken_noise_variance_grows_with_signal_as_poisson_gaussian():
    peak, sigma = 500.0, 2e-3
    levels = (0.2, 0.5, 0.9)  # sRGB grey levels of flat patches
    img = np.concatenate([np.full((200, 200, 3), int(v * 255), np.uint8) for v in levels], axis=1)
    exposure = 0.5
    low = pp.darken(img, exposure=exposure, peak=peak, read_sigma=sigma, rng=np.random.default_rng(1))
    lin = pp.srgb_to_linear(low / 255.0)
    variances = []
    for i, v in enumerate(levels):
        x = exposure * pp.srgb_to_linear(int(v * 255) / 255.0)
        patch = lin[:, 200 * i : 200 * (i + 1)]
        predicted = x / peak + sigma**2
        assert patch.mean() == pytest.approx(x, rel=0.02)
        assert patch.var() == pytest.approx(predicted, rel=0.15)  # 8-bit rounding adds a little
        variances.append(patch.var())
    assert variances[0] < variances[1] < variances[2]


def test_darken_is_seeded():
    img = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[::4, ::4]
    params = {'exposure': 0.05, 'peak': 2000.0, 'read_sigma': 1e-3}
    a = pp.darken(img, rng=np.random.default_rng(5), **params)
    b = pp.darken(img, rng=np.random.default_rng(5), **params)
    c = pp.darken(img, rng=np.random.default_rng(6), **params)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_draw_darkening_stays_in_range_and_rejects_bad_ranges():
    rng = np.random.default_rng(0)
    draws = [pp.draw_darkening(rng) for _ in range(200)]
    assert all(pp.EXPOSURE_RANGE[0] <= d['exposure'] <= pp.EXPOSURE_RANGE[1] for d in draws)
    assert all(pp.PEAK_RANGE[0] <= d['peak'] <= pp.PEAK_RANGE[1] for d in draws)
    with pytest.raises(pp.PhotoPairsError, match='exposure range'):
        pp.draw_darkening(rng, exposure_range=(0.0, 0.1))


def test_fit_size_keeps_aspect_and_orientation():
    assert pp.fit_size((1600, 2560)) == (375, 600)
    assert pp.fit_size((3000, 2000)) == (600, 400)  # portrait: fitted into 400 x 600
    assert pp.fit_size((400, 1600)) == (256, 1024)  # very wide: short side kept at 256
    assert pp.fit_size((300, 400)) == (300, 400)  # never enlarged


# ------------------------------------------------------------------------------------ photo sources


def test_dedup_keeps_the_largest_copy_of_one_photo_at_two_resolutions(tmp_path):
    astro = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    big = _write(tmp_path / 'a' / 'astronaut.png', astro)
    small = _write(tmp_path / 'b' / 'astro_small.jpg', cv2.resize(astro, (300, 300), interpolation=cv2.INTER_AREA))
    cat = _write(tmp_path / 'b' / 'chelsea.png', cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2BGR))
    kept, unreadable = pp.deduplicate([big, small, cat])
    assert unreadable == []
    assert [(p, s) for p, s, _ in kept] == [(big, (512, 512)), (cat, (300, 451))]
    assert kept[0][2] == [small]


def test_dedup_groups_a_plasma_theme_folder_and_names_it_by_the_theme(tmp_path):
    theme = tmp_path / 'Lake' / 'contents'
    a = _write(theme / 'images' / '1920x1080.png', _synthetic(1, 108, 192))
    b = _write(theme / 'images' / '640x480.png', _synthetic(2, 48, 64))  # other crop: same photo by folder
    photos, skipped = pp.collect_photos([str(tmp_path)], min_short=32)
    assert [(p.name, p.path, p.duplicates) for p in photos] == [('Lake', a, [b])]
    assert skipped == [{'path': b, 'reason': f'duplicate of {a}'}]


def test_source_folder_without_images_is_named(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no photos here')
    with pytest.raises(pp.PhotoPairsError, match=f"'{empty}' holds no image"):
        pp.collect_photos([str(empty)])
    with pytest.raises(pp.PhotoPairsError, match='does not exist'):
        pp.collect_photos([str(tmp_path / 'missing')])


def test_small_photos_are_skipped_with_the_reason(tmp_path):
    _write(tmp_path / 'tiny.png', _synthetic(0, 20, 30))
    _write(tmp_path / 'ok.png', _synthetic(1, 48, 64))
    photos, skipped = pp.collect_photos([str(tmp_path)], min_short=32)
    assert [p.name for p in photos] == ['ok']
    assert skipped == [{'path': str(tmp_path / 'tiny.png'), 'reason': 'short side 20 < 32'}]


# ------------------------------------------------------------------------------------------- split


def test_split_is_by_photo_disjoint_seeded_and_has_min_test():
    names = [f'p{i}' for i in range(40)]
    train, test = pp.split_photos(names, seed=1)
    assert len(test) == 15 and len(train) == 25  # 20 % of 40 is 8, raised to the minimum 15
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(names)
    assert pp.split_photos(names, seed=1) == (train, test)
    assert pp.split_photos(names, seed=2)[1] != test
    assert len(pp.split_photos([f'p{i}' for i in range(100)], seed=1)[1]) == 20
    assert pp.split_photos(names, seed=1, test_fraction=1.0) == ([], sorted(names))


def test_split_with_too_few_photos_names_the_count():
    with pytest.raises(pp.PhotoPairsError, match=r'found 15 distinct photos; need at least 16'):
        pp.split_photos([f'p{i}' for i in range(15)], seed=0)
    only_test = r'found 3 distinct photos; need at least 4 \(4 for the unseen test split\)'
    with pytest.raises(pp.PhotoPairsError, match=only_test):
        pp.split_photos(['a', 'b', 'c'], seed=0, min_test=4, test_fraction=1.0)


# ------------------------------------------------------------------------------- layout and manifest


def test_layout_manifest_and_seed_determinism(tmp_path):
    src = _photo_folder(tmp_path / 'src', 18)
    _write(tmp_path / 'src' / 'dup_of_img00.png', cv2.resize(_synthetic(0), (32, 24)))
    m = _make(tmp_path / 'out', src, min_short=24, command='make_photo_pairs.py --src src')
    out = tmp_path / 'out'

    assert m['counts']['train'] == 3 and m['counts']['test'] == 15
    for split, names in (('our485', m['train']), ('eval15', m['test'])):
        for side in ('low', 'high'):
            assert sorted(os.listdir(out / split / side)) == names
    assert set(m['train']).isdisjoint(m['test'])

    on_disk = json.loads((out / 'MANIFEST.json').read_text())
    assert on_disk == json.loads(json.dumps(m))
    assert on_disk['seed'] == 3 and on_disk['command'] == 'make_photo_pairs.py --src src'
    assert on_disk['sources'] == [src] and on_disk['filter'] is None
    assert on_disk['settings']['exposure_range'] == list(pp.EXPOSURE_RANGE)
    rec = next(r for r in on_disk['photos'] if r['name'] == 'img00.png')
    assert rec['source'] == osp.join(src, 'img00.png') and rec['size'] == [48, 64] and rec['source_size'] == [48, 64]
    assert rec['duplicates'] == [osp.join(src, 'dup_of_img00.png')]
    assert rec['package'] is None and rec['package_version'] is None  # not a Debian package file
    assert pp.EXPOSURE_RANGE[0] <= rec['exposure'] <= pp.EXPOSURE_RANGE[1]
    assert {'peak', 'read_sigma', 'mean_low', 'mean_high', 'split'} <= set(rec)
    split = rec['split']
    high = cv2.imread(str(out / split / 'high' / 'img00.png'))
    low = cv2.imread(str(out / split / 'low' / 'img00.png'))
    assert np.array_equal(high, _synthetic(0)) and low.dtype == np.uint8 and low.shape == high.shape
    assert low.mean() < 0.5 * high.mean()
    assert on_disk['mean_brightness']['high'] > 3 * on_disk['mean_brightness']['low']

    again = _make(tmp_path / 'out2', src, min_short=24)
    other = _make(tmp_path / 'out3', src, min_short=24, seed=4)
    for name in m['test']:
        first = (out / 'eval15' / 'low' / name).read_bytes()
        assert first == (tmp_path / 'out2' / 'eval15' / 'low' / name).read_bytes()
    assert again['photos'] == m['photos']
    assert [r['exposure'] for r in other['photos']] != [r['exposure'] for r in m['photos']]


def test_rerun_replaces_output_and_refuses_a_foreign_folder(tmp_path):
    src = _photo_folder(tmp_path / 'src', 16)
    _make(tmp_path / 'out', src)
    _write(tmp_path / 'out' / 'eval15' / 'low' / 'stale.png', _synthetic(99))
    m = _make(tmp_path / 'out', src, test_fraction=1.0)
    assert sorted(os.listdir(tmp_path / 'out' / 'eval15' / 'low')) == m['test'] and len(m['test']) == 16
    assert os.listdir(tmp_path / 'out' / 'our485' / 'low') == []

    foreign = tmp_path / 'mine'
    _write(foreign / 'keep.png', _synthetic(0))
    with pytest.raises(pp.PhotoPairsError, match=f"'{foreign}' is not empty and has no MANIFEST.json"):
        _make(foreign, src)
    assert os.listdir(foreign) == ['keep.png']


def test_cli_writes_the_set_and_reports_errors(tmp_path, capsys):
    src = _photo_folder(tmp_path / 'src', 16)
    out = tmp_path / 'out'
    argv = ['--src', src, '--out', str(out), '--size', '64', '48', '--min-short', '32', '--exposure', '0.05,0.06']
    assert pp.main(argv) == 0
    assert '1 training and 15 unseen test pairs' in capsys.readouterr().out
    m = json.loads((out / 'MANIFEST.json').read_text())
    assert all(0.05 <= r['exposure'] <= 0.06 for r in m['photos'])
    assert m['command'].endswith(' '.join(argv[:2]) + f' --out {out} --size 64 48 --min-short 32 --exposure 0.05,0.06')

    empty = tmp_path / 'empty'
    empty.mkdir()
    assert pp.main(['--src', str(empty), '--out', str(tmp_path / 'o2')]) == 2
    assert f"'{empty}' holds no image" in capsys.readouterr().err
