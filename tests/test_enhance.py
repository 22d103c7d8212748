"""deepspg-enhance: formats kept, folders / globs, failures reported, tiled against untiled."""

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr import enhance as E
from deepspg_basicsr.inference import DeepSPGEnhancer, crop_features
from deepspg_basicsr.utils.class_names import seg_palette

import cv2
import numpy as np
import pytest
import torch
from basicsr.models import build_model
from llie_test_utils import BASE_TRAIN_OPT, train_opt, write_test_option_file

# Tiled against untiled (see docs/EVALUATION.md):
# * without the prior (network_g.use_semantics: false) DeepSPG is a local, down-sampling-by-4
#   network: tiles aligned to 4 and an overlap of at least 4x its receptive-field radius (39 px
#   for the net below, so overlap 160) give the untiled output up to float rounding;
LOCAL_ATOL = 1e-5
# * with the prior, each tile's semantics (and SEM's attention, which pools over the tile) are
#   local to the tile: the output differs. Measured with random weights on 96x128, tile 64,
#   overlap 16: max 6.7e-3, mean 8.5e-4 (per tile) and 5.3e-3 / 9.4e-4 (--prior-global). Bounds:
SEMANTIC_MAX, SEMANTIC_MEAN = 0.05, 0.005

NET = BASE_TRAIN_OPT['network_g']


def _wrap(model, args):
    """The command line's enhancer around an already built model (instead of building it again)."""
    return DeepSPGEnhancer.from_model(model, **E.run_options(args))


def _enhance(model, x, **options):
    return DeepSPGEnhancer.from_model(model, **options).enhance_tensor(x)['out']


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """An option file (small DeepSPG + light prior) and its random-weight checkpoint."""
    root = tmp_path_factory.mktemp('enhance')
    model = write_test_option_file(root)
    return root, model


def _images(folder):
    """8-bit colour, 16-bit colour, 8-bit grey, 8-bit RGBA, and a corrupt PNG; all small."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    imgs = {
        'colour8.png': rng.integers(0, 60, (36, 44, 3), dtype=np.uint8),
        'colour16.png': rng.integers(0, 15000, (30, 40, 3), dtype=np.uint16),
        'grey.png': rng.integers(0, 60, (28, 36), dtype=np.uint8),
        'alpha.png': np.dstack(
            [rng.integers(0, 60, (32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (32, 32), dtype=np.uint8)]
        ),
    }
    for name, img in imgs.items():
        assert cv2.imwrite(str(folder / name), img)
    (folder / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 40)
    (folder / 'notes.txt').write_text('not an image, not taken from a folder')
    return imgs


def test_folder_keeps_names_depth_grey_alpha_and_reports_the_corrupt_file(setup, tmp_path, capsys):
    """The command line loads the option file and weights itself; each written file equals the
    library's :meth:`DeepSPGEnhancer.enhance` of the source image with the model that wrote the
    weights (bit for bit).

    Fails if the command line runs other options than it was given (``run_options`` with
    ``'self_ensemble': True``: tried) or loads other weights."""
    root, model = setup
    imgs = _images(tmp_path / 'in')
    out = tmp_path / 'out'
    argv = [str(tmp_path / 'in'), '-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth')]
    status = E.main(argv + ['--output', str(out), '--device', 'cpu', '--no-progress'])
    err = capsys.readouterr().err
    assert status == 1
    assert 'corrupt.png' in err and 'cannot decode' in err and '4 of 5 images written' in err
    assert sorted(p.name for p in out.iterdir()) == sorted(imgs)  # same names, nothing else
    reference = DeepSPGEnhancer.from_model(model)  # the library's defaults
    for name, src in imgs.items():
        got = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert got.dtype == src.dtype and got.shape == src.shape, name
        assert np.array_equal(got, reference.enhance(src)), name
        assert not np.array_equal(got, src), name  # it was enhanced
    alpha_src = imgs['alpha.png'][..., 3]
    assert np.array_equal(cv2.imread(str(out / 'alpha.png'), cv2.IMREAD_UNCHANGED)[..., 3], alpha_src)


def test_glob_input_and_the_optional_pictures(setup, tmp_path, capsys):
    root, _ = setup
    rng = np.random.default_rng(1)
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.jpg'), rng.integers(0, 60, (40, 48, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / 'in' / 'b.png'), rng.integers(0, 60, (40, 48, 3), dtype=np.uint8))
    out = tmp_path / 'out'
    argv = [str(tmp_path / 'in' / '*.jpg'), '-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth')]
    argv += ['--output', str(out), '--device', 'cpu', '--save-compare', '--save-maps', '--save-seg']
    argv += ['--tile', '32', '--overlap', '8', '--prior-global']  # 2 x 2 tiles fed whole-image features
    assert E.main(argv) == 0, capsys.readouterr().err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file()) == [
        'a.jpg',
        'compare/a.png',
        'maps/a_illumination.png',
        'maps/a_reflectance.png',
        'seg/a.png',
    ]
    assert cv2.imread(str(out / 'compare/a.png')).shape == (40, 96, 3)  # input | output
    assert cv2.imread(str(out / 'seg/a.png')).shape == (40, 48, 3)


def test_self_ensemble_tiled_from_the_command_line_equals_the_library(setup, tmp_path, capsys):
    """``deepspg-enhance --self-ensemble --tile 32 --overlap 8`` (2 x 2 tiles, eight transforms of each)
    writes what :class:`DeepSPGEnhancer` with the same settings returns, bit for bit, and not what
    it returns without the ensemble.

    Fails if ``--self-ensemble`` is not passed on (``run_options`` with ``'self_ensemble': False``: tried)."""
    root, model = setup
    img = cv2.resize(np.random.default_rng(3).integers(0, 60, (6, 8, 3), dtype=np.uint8), (52, 40))
    (tmp_path / 'in').mkdir()
    assert cv2.imwrite(str(tmp_path / 'in' / 'a.png'), img)
    argv = [str(tmp_path / 'in' / 'a.png'), '-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth')]
    argv += ['--output', str(tmp_path / 'out'), '--device', 'cpu', '--no-progress', '--tile', '32', '--overlap', '8']
    assert E.main(argv + ['--self-ensemble']) == 0, capsys.readouterr().err
    got = cv2.imread(str(tmp_path / 'out' / 'a.png'), cv2.IMREAD_UNCHANGED)
    want = DeepSPGEnhancer.from_model(model, tile=32, overlap=8, self_ensemble=True).enhance(img)
    plain = DeepSPGEnhancer.from_model(model, tile=32, overlap=8).enhance(img)
    assert np.array_equal(got, want)
    assert np.abs(got.astype(int) - plain).max() > 2


def test_command_line_errors_are_clear(setup, tmp_path, capsys, monkeypatch):
    root, model = setup
    (tmp_path / 'x.png').write_bytes(b'')
    base = [str(tmp_path / 'x.png'), '--output', str(tmp_path / 'out')]
    assert E.main(base + ['-opt', str(root / 'test.yml'), '--device', 'cpu', '--half']) == 2
    assert '--half runs fp16 on CUDA only' in capsys.readouterr().err
    assert E.main(base + ['-opt', str(root / 'test.yml'), '--device', 'cpu']) == 2
    assert 'no enhancer weights' in capsys.readouterr().err
    assert E.main(base + ['--weights', str(tmp_path / 'missing.pth'), '--device', 'cpu']) == 2
    assert 'missing.pth' in capsys.readouterr().err
    assert E.main([str(tmp_path / 'nothing*.png'), '--output', str(tmp_path / 'out'), '--device', 'cpu']) == 2
    assert 'pattern matches no file' in capsys.readouterr().err
    monkeypatch.setattr(E, 'build_enhancer', lambda args, device: _wrap(model, args))
    assert E.main([str(tmp_path / 'x.png'), '--output', str(tmp_path), '--device', 'cpu', '--no-progress']) == 1
    assert 'would overwrite the input' in capsys.readouterr().err
    assert E.main(base + ['--device', 'cpu', '--tile', '66', '--overlap', '64']) == 2
    assert 'must exceed --overlap 64 by at least 4' in capsys.readouterr().err
    for sub in ('a', 'b'):  # two inputs with one file name: the second is refused, the first written
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / 'same.png'), np.full((8, 8, 3), 20, np.uint8))
    argv = [str(tmp_path / 'a/same.png'), str(tmp_path / 'b/same.png'), '--output', str(tmp_path / 'out')]
    assert E.main(argv + ['--device', 'cpu', '--no-progress']) == 1
    err = capsys.readouterr().err
    assert f'{tmp_path / "b/same.png"}: same file name as {tmp_path / "a/same.png"}' in err
    assert (tmp_path / 'out/same.png').is_file()


def test_palette_is_fixed_and_distinct():
    palette = seg_palette(150)
    assert palette.shape == (150, 3) and torch.equal(palette, seg_palette(150))
    assert len({tuple((c * 255).round().int().tolist()) for c in palette}) == 150


@torch.no_grad()
def test_without_the_prior_tiled_equals_untiled():
    torch.manual_seed(0)
    model = build_model(train_opt(is_train=False, network_g={'use_semantics': False}))
    x = torch.rand(1, 3, 300, 400, generator=torch.Generator().manual_seed(3)) * 0.3
    ref = model.enhance(model.net_g, x).clamp(0, 1)
    out = DeepSPGEnhancer.from_model(model, tile=256, overlap=160).enhance_tensor(x)['out']  # 2 x 3 tiles
    assert (out - ref).abs().max().item() <= LOCAL_ATOL


@torch.no_grad()
def test_with_the_prior_tiles_differ_within_the_stated_bound_and_untiled_prior_global_is_exact(setup):
    _, model = setup
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(1)) * 0.3
    ref = model.enhance(model.net_g, x).clamp(0, 1)
    # untiled, --prior-global is the plain computation (whole-image features sampled at their own
    # cell centres, the C2F pass on the coarse result)
    assert (_enhance(model, x, prior_global=True) - ref).abs().max().item() <= 1e-5
    for prior_global in (False, True):
        diff = (_enhance(model, x, tile=64, overlap=16, prior_global=prior_global) - ref).abs()
        assert 0 < diff.max().item() <= SEMANTIC_MAX and diff.mean().item() <= SEMANTIC_MEAN, prior_global


def test_crop_features_of_the_whole_image_is_the_identity():
    feats = [torch.rand(1, 4, 25, 32), torch.rand(1, 2, 13, 16)]  # strides 4 and 8 of 100 x 128
    crops = crop_features(feats, (0, 0, 100, 128), (100, 128))
    assert all(torch.allclose(c, f, atol=1e-6) for c, f in zip(crops, feats))
    # the right half of the image: the right half of each map (cell centres align)
    crops = crop_features(feats, (0, 64, 100, 64), (100, 128))
    assert all(torch.allclose(c, f[..., f.shape[-1] // 2 :], atol=1e-6) for c, f in zip(crops, feats))
