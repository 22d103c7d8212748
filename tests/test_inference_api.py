"""The one inference core (DeepSPGEnhancer): the same output as deepspg-enhance and deepspg-app, every
image kind it takes, option files checked, weights files that describe themselves, the ONNX backend."""

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split

from deepspg_basicsr import DeepSPGEnhancer
from deepspg_basicsr import enhance as E
from deepspg_basicsr.app import session as S
from deepspg_basicsr.inference import EnhanceError, read_weights_record, save_weights
from deepspg_basicsr.utils.options_check import OptionError

import cv2
import numpy as np
import pytest
import torch
import yaml
from llie_test_utils import BASE_TRAIN_OPT, LIGHT_SEG, write_test_option_file

#: Tiles small enough that the images below are enhanced in several (the seams are the core's).
RUN = ['--device', 'cpu', '--no-progress', '--tile', '32', '--overlap', '16']


def _inputs():
    """The image kinds the CLI reads from files: 8-bit, 16-bit, float, grey, RGBA (all small)."""
    rng = np.random.default_rng(4)
    colour = rng.integers(0, 60, (40, 52, 3), dtype=np.uint8)
    return {
        'colour8.png': colour,
        'colour16.png': rng.integers(0, 15000, (36, 44, 3), dtype=np.uint16),
        'float.tiff': (rng.random((30, 38, 3)) * 0.25).astype(np.float32),
        'grey.png': rng.integers(0, 60, (34, 40), dtype=np.uint8),
        'rgba.png': np.dstack([colour, rng.integers(0, 256, (40, 52), dtype=np.uint8)]),
    }


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """The small DeepSPG option file + checkpoint, the enhancer on them, and the CLI's outputs."""
    root = tmp_path_factory.mktemp('api')
    write_test_option_file(root)
    imgs = _inputs()
    (root / 'in').mkdir()
    for name, img in imgs.items():
        assert cv2.imwrite(str(root / 'in' / name), img)
    files = ['-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth')]
    assert E.main([str(root / 'in'), *files, '--output', str(root / 'cli'), *RUN]) == 0
    enhancer = DeepSPGEnhancer(root / 'test.yml', weights=root / 'net_g.pth', device='cpu', tile=32, overlap=16)
    return root, imgs, enhancer


def _cli(root, name):
    return cv2.imread(str(root / 'cli' / name), cv2.IMREAD_UNCHANGED)


def test_api_cli_and_app_give_bit_identical_outputs(setup):
    root, imgs, enhancer = setup
    app = S.AppSession(root / 'app', device='cpu', overlap=16)
    app.load(str(root / 'test.yml'), str(root / 'net_g.pth'), '')
    for name in ('colour8.png', 'colour16.png', 'rgba.png'):
        api = enhancer.enhance(imgs[name])
        cli = _cli(root, name)
        download = cv2.imread(app.enhance_photo(str(root / 'in' / name), app.new_run_folder(), tile=32).download, -1)
        assert api.dtype == cli.dtype == download.dtype and api.shape == cli.shape, name
        assert np.array_equal(api, cli) and np.array_equal(download, cli), name
        assert not np.array_equal(api, imgs[name]), name  # it was enhanced


def test_every_input_kind_gives_the_command_lines_result(setup):
    root, imgs, enhancer = setup
    colour = imgs['colour8.png']
    want = _cli(root, 'colour8.png')
    rgb = np.ascontiguousarray(colour[..., ::-1])
    assert np.array_equal(enhancer.enhance(rgb, channel_order='rgb'), want[..., ::-1])  # RGB in, RGB out
    for name in ('colour16.png', 'float.tiff', 'grey.png'):
        got = enhancer.enhance(imgs[name])
        assert got.dtype == imgs[name].dtype and got.shape == imgs[name].shape, name
        assert np.array_equal(got, _cli(root, name)), name
    grey_hw1 = enhancer.enhance(imgs['grey.png'][..., None])
    assert grey_hw1.shape == (34, 40, 1) and np.array_equal(grey_hw1[..., 0], _cli(root, 'grey.png'))
    as_f64 = enhancer.enhance(imgs['float.tiff'].astype(np.float64))
    assert as_f64.dtype == np.float64 and np.array_equal(as_f64.astype(np.float32), _cli(root, 'float.tiff'))
    rgba = enhancer.enhance(imgs['rgba.png'])
    assert np.array_equal(rgba[..., 3], imgs['rgba.png'][..., 3]) and np.array_equal(rgba, _cli(root, 'rgba.png'))

    from PIL import Image

    pil = enhancer.enhance(Image.fromarray(rgb))
    assert isinstance(pil, Image.Image) and pil.mode == 'RGB' and np.array_equal(np.asarray(pil), want[..., ::-1])
    pil_rgba = enhancer.enhance(Image.fromarray(np.ascontiguousarray(imgs['rgba.png'][..., [2, 1, 0, 3]])))
    assert pil_rgba.mode == 'RGBA' and np.array_equal(np.asarray(pil_rgba)[..., 3], imgs['rgba.png'][..., 3])

    x = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)
    for t in (x, x[None].double()):
        out = enhancer.enhance(t)
        assert out.shape == t.shape and out.dtype == t.dtype
        as_uint8 = (out.float().reshape(3, 40, 52).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(as_uint8, want[..., ::-1])


def test_maps_and_segmentation_on_request(setup):
    root, imgs, enhancer = setup
    res = enhancer.enhance(imgs['colour8.png'], maps=True, segmentation=True)
    assert np.array_equal(res['image'], _cli(root, 'colour8.png'))
    assert res['illumination'].shape == res['reflectance'].shape == (40, 52, 3)
    assert res['illumination'].dtype == np.float32 and res['illumination'].std() > 0
    classes = res['segmentation']
    assert classes.shape == (40, 52) and classes.dtype == np.int64
    assert 0 <= classes.min() and classes.max() < enhancer.seg_prior.num_classes


def test_a_misspelt_option_key_is_named_with_its_nearest_neighbour(setup, tmp_path, capsys):
    root, _, _ = setup
    opt = yaml.safe_load((root / 'test.yml').read_text())
    bad = dict(opt, network_gg=opt.pop('network_g'))
    (tmp_path / 'bad.yml').write_text(yaml.safe_dump(bad))
    with pytest.raises(OptionError, match=r"unknown key `network_gg` \(did you mean 'network_g'") as err:
        DeepSPGEnhancer(tmp_path / 'bad.yml', weights=root / 'net_g.pth', device='cpu')
    assert str(tmp_path / 'bad.yml') in str(err.value)
    argv = [str(root / 'in' / 'grey.png'), '-opt', str(tmp_path / 'bad.yml'), '--weights', str(root / 'net_g.pth')]
    assert E.main(argv + ['--output', str(tmp_path / 'out'), '--device', 'cpu']) == 2
    assert "unknown key `network_gg` (did you mean 'network_g'" in capsys.readouterr().err
    nested = dict(opt, network_g=dict(BASE_TRAIN_OPT['network_g'], num_feats=8), prior={'seg_confg': LIGHT_SEG})
    with pytest.raises(OptionError) as err:
        DeepSPGEnhancer(nested, weights=root / 'net_g.pth', device='cpu')
    assert "`network_g.num_feats`: DeepSPG takes no argument 'num_feats' (did you mean 'num_feat'" in str(err.value)
    assert "unknown key `prior.seg_confg` (did you mean 'seg_config'" in str(err.value)


def test_a_self_describing_weights_file_needs_no_option_file(setup, tmp_path):
    root, imgs, enhancer = setup
    state = torch.load(root / 'net_g.pth', weights_only=True)['params']
    path = save_weights(str(tmp_path / 'deepspg.pth'), state, BASE_TRAIN_OPT['network_g'], {'seg_config': LIGHT_SEG})
    record = read_weights_record(path)
    assert record['network_g'] == BASE_TRAIN_OPT['network_g'] and record['prior'] == {'seg_config': LIGHT_SEG}
    alone = DeepSPGEnhancer(weights=path, device='cpu', tile=32, overlap=16)
    assert np.array_equal(alone.enhance(imgs['colour8.png']), enhancer.enhance(imgs['colour8.png']))


def test_a_known_name_is_resolved_through_the_weights_table(setup, tmp_path, monkeypatch):
    root, imgs, enhancer = setup
    state = torch.load(root / 'net_g.pth', weights_only=True)['params']
    path = save_weights(str(tmp_path / 'w.pth'), state, BASE_TRAIN_OPT['network_g'], {'seg_config': LIGHT_SEG})
    from deepspg_basicsr.weights import KnownWeights, file_sha256, known_weights

    entry = KnownWeights(
        'deepspg-test',
        'DeepSPG test',
        'enhancer',
        'w.pth',
        file_sha256(path),
        'http://127.0.0.1:9/w.pth',
        'a test',
        'MIT',
        packaged=True,
    )
    monkeypatch.setitem(known_weights.KNOWN_WEIGHTS, 'deepspg-test', entry)
    monkeypatch.setattr(known_weights, 'PACKAGE_WEIGHTS_DIR', str(tmp_path))
    by_name = DeepSPGEnhancer(weights='DeepSPG-Test', device='cpu', tile=32, overlap=16)
    assert by_name.weights == path
    assert np.array_equal(by_name.enhance(imgs['grey.png']), enhancer.enhance(imgs['grey.png']))
    with pytest.raises(EnhanceError, match='espnetv2-pascal.*not enhancer weights'):
        DeepSPGEnhancer(weights='espnetv2-pascal', device='cpu')  # a prior's name is refused by kind
    with pytest.raises(EnhanceError, match='deepspg-nothing'):
        DeepSPGEnhancer(weights='deepspg-nothing', device='cpu')
    with pytest.raises(EnhanceError, match='weights file not found: .*missing.pth'):
        DeepSPGEnhancer(weights=str(tmp_path / 'missing.pth'), device='cpu')


def test_the_onnx_backend_through_the_same_interface_equals_the_command_line(setup, tmp_path):
    from deepspg_basicsr import export as X

    root, imgs, _ = setup
    onnx_path = str(tmp_path / 'm.onnx')
    assert X.main(['-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth'), '--output', onnx_path]) == 0
    ort = DeepSPGEnhancer(onnx=onnx_path, device='cpu', tile=32, overlap=16, threads=1)
    argv = [str(root / 'in' / 'colour8.png'), str(root / 'in' / 'rgba.png'), '--backend', 'onnxruntime']
    assert E.main(argv + ['--onnx', onnx_path, '--threads', '1', '--output', str(tmp_path / 'cli'), *RUN]) == 0
    for name in ('colour8.png', 'rgba.png'):
        want = cv2.imread(str(tmp_path / 'cli' / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(ort.enhance(imgs[name]), want), name
    res = ort.enhance(imgs['colour8.png'], maps=True)
    assert res['illumination'].shape == (40, 52, 3)
    with pytest.raises(EnhanceError, match='needs the torch backend'):
        ort.enhance(imgs['colour8.png'], segmentation=True)
    with pytest.raises(EnhanceError, match='--prior-global: not available with --backend onnxruntime'):
        DeepSPGEnhancer(onnx=onnx_path, device='cpu', prior_global=True)
