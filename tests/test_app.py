"""deepspg-app without a browser: the same result as deepspg-enhance, formats kept, clear messages."""

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
import argparse

from deepspg_basicsr import enhance as E
from deepspg_basicsr.app import cli
from deepspg_basicsr.app import session as S
from deepspg_basicsr.app.ui import run_status
from deepspg_basicsr.utils.class_names import class_names_for, seg_palette
from deepspg_basicsr.utils.tiling import tiled_forward

import cv2
import numpy as np
import pytest
import torch
import yaml
from llie_test_utils import BASE_TRAIN_OPT, write_demo_photo, write_test_option_file


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """The small DeepSPG option file + checkpoint, an app session with them loaded, and its folder."""
    root = tmp_path_factory.mktemp('app')
    write_test_option_file(root)
    app = S.AppSession(root / 'app_out', device='cpu', overlap=16)
    status = app.load(str(root / 'test.yml'), str(root / 'net_g.pth'), '')
    return root, app, status


def test_class_names_by_class_count_and_the_priors_own():
    ade = class_names_for(num_classes=150)
    assert len(ade) == 150 and ade[:3] == ('wall', 'building', 'sky') and ade[12] == 'person'
    voc = class_names_for(num_classes=21)
    assert voc[0] == 'background' and voc[15] == 'person' and voc[20] == 'tvmonitor'
    city = class_names_for(num_classes=19)
    assert city[0] == 'road' and city[10] == 'sky' and city[18] == 'bicycle'
    assert class_names_for(num_classes=20)[19] == 'ignore / void' and class_names_for(num_classes=20)[:19] == city
    assert class_names_for(num_classes=3) == ('class 0', 'class 1', 'class 2')
    own = argparse.Namespace(num_classes=2, class_names=['dark', 'light'])
    assert class_names_for(own) == ('dark', 'light')
    wrong_length = argparse.Namespace(num_classes=21, class_names=['a', 'b'])
    assert class_names_for(wrong_length) == voc
    with pytest.raises(ValueError, match='prior or num_classes'):
        class_names_for()


def test_legend_lists_the_classes_present_by_area_in_palette_colours():
    classes = torch.tensor([[[2, 2, 2, 0], [2, 2, 0, 5]]])  # class 2: 5 px, class 0: 2 px, class 5: 1 px
    names = [f'n{k}' for k in range(6)]
    entries = S.legend_entries(classes, names)
    assert [(k, name) for k, name, _, _ in entries] == [(2, 'n2'), (0, 'n0'), (5, 'n5')]
    assert [round(f, 4) for _, _, f, _ in entries] == [0.625, 0.25, 0.125]
    r, g, b = (seg_palette(6)[2] * 255).round().int().tolist()
    assert entries[0][3] == f'#{r:02x}{g:02x}{b:02x}'
    assert [k for k, *_ in S.legend_entries(classes, names, min_fraction=0.2)] == [2, 0]
    html = S.legend_html(entries, 'ADE20K')
    assert 'n2' in html and '62.5%' in html and 'ADE20K' in html and entries[2][3] in html
    assert '&lt;b&gt;' in S.legend_html([(0, '<b>', 1.0, '#000000')])  # names are escaped


def test_memory_estimate_and_the_suggested_tile():
    assert S.memory_estimate(1000, 1000) == 1000 * 1000 * (S.UNTILED_BYTES_PER_PIXEL + S.BUFFER_BYTES_PER_PIXEL)
    assert S.memory_estimate(1000, 1000, tile=2000) == S.memory_estimate(1000, 1000)  # fits one tile: whole
    tiled = S.memory_estimate(1000, 1000, tile=512)
    assert tiled == 1000 * 1000 * S.BUFFER_BYTES_PER_PIXEL + S.TILE_512_BYTES
    assert S.suggest_tile(1000, 1000, 10 * S.GB) == 1024
    assert S.suggest_tile(1000, 1000, tiled) == 512
    assert S.suggest_tile(100000, 100000, S.GB) is None


def test_tiles_report_progress():
    calls = []
    out = tiled_forward(
        lambda t: t * 2, torch.ones(1, 1, 50, 70), tile=32, overlap=8, progress=lambda *a: calls.append(a)
    )
    assert torch.allclose(out, torch.full_like(out, 2.0))
    assert calls == [(k, 6) for k in range(1, 7)]  # 2 rows x 3 columns
    calls.clear()
    tiled_forward(lambda t: t, torch.ones(1, 1, 20, 20), tile=32, overlap=8, progress=lambda *a: calls.append(a))
    assert calls == [(1, 1)]


def test_photos_equal_deepspg_enhance_output_and_keep_16_bit_and_alpha(setup, tmp_path):
    root, app, status = setup
    assert 'Model loaded' in status and 'torch (cpu)' in status and 'RANDOM WEIGHTS' in status
    photo = tmp_path / 'in' / 'astronaut.png'
    photo.parent.mkdir()
    low = write_demo_photo(photo, size=(60, 84))
    rgba16 = np.dstack([low, np.arange(60 * 84).reshape(60, 84) % 256]).astype(np.uint16) * 257
    assert cv2.imwrite(str(tmp_path / 'in' / 'rgba16.png'), rgba16)

    run = app.new_run_folder()
    ticks = []
    results = {
        name: app.enhance_photo(str(tmp_path / 'in' / name), run, tile=32, progress=lambda *a: ticks.append(a))
        for name in ('astronaut.png', 'rgba16.png')
    }
    assert ticks[-1][0] == ticks[-1][1] > 1  # tiles were reported, up to the last
    cli_out = tmp_path / 'cli'
    argv = [str(tmp_path / 'in'), '-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth')]
    assert (
        E.main(argv + ['--output', str(cli_out), '--device', 'cpu', '--tile', '32', '--overlap', '16', '--no-progress'])
        == 0
    )
    for name, res in results.items():
        got = cv2.imread(res.download, cv2.IMREAD_UNCHANGED)
        want = cv2.imread(str(cli_out / name), cv2.IMREAD_UNCHANGED)
        assert got.dtype == want.dtype and np.array_equal(got, want), name
        assert res.size == (60, 84) and res.seconds > 0
        for picture in (res.before, res.after, res.illumination, res.reflectance, res.segmentation):
            view = cv2.imread(picture, cv2.IMREAD_UNCHANGED)
            assert view.dtype == np.uint8 and view.shape == (60, 84, 3), picture
        assert 'Classes the prior saw (ADE20K)' in res.legend
    rgba = cv2.imread(results['rgba16.png'].download, cv2.IMREAD_UNCHANGED)
    assert rgba.dtype == np.uint16 and rgba.shape == (60, 84, 4) and np.array_equal(rgba[..., 3], rgba16[..., 3])
    assert any('16 bits' in n for n in results['rgba16.png'].notes)
    assert any('alpha' in n for n in results['rgba16.png'].notes) and results['astronaut.png'].notes == []
    written = [p for p in (root / 'app_out').rglob('*') if p.is_file()]
    assert len(written) == 12 and all(str(p).startswith(run) for p in written)  # 2 results + 2 x 5 previews
    text = run_status(list(results.values()), ['x.png: broken'], 1.5, app.backend(), app.random_weights_warnings())
    assert 'Enhanced 2 of 3 photo(s)** in 1.5 s with torch (cpu)' in text and '**Failed:** x.png: broken' in text
    assert text.startswith('> ⚠️ **THE SEMANTIC PRIOR HAS RANDOM WEIGHTS')


def test_bad_photos_and_model_files_get_clear_messages(setup, tmp_path, monkeypatch):
    root, app, _ = setup
    run = app.new_run_folder()
    (tmp_path / 'holiday.jpg').write_bytes(b'this is a text file')
    with pytest.raises(S.AppError, match=r'holiday\.jpg: not an image this app can read \(cannot decode') as err:
        app.enhance_photo(str(tmp_path / 'holiday.jpg'), run)
    assert str(tmp_path) not in str(err.value)  # the upload's temporary path is not shown

    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), np.zeros((400, 600, 3), np.uint8))
    limit = app.memory_limit
    app.memory_limit = S.memory_estimate(400, 600, 256)  # 256 fits, the whole image does not
    from PIL import Image

    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)  # Pillow's own bound must not hide the size
    assert S.image_size(str(big)) == (400, 600) and Image.MAX_IMAGE_PIXELS == 1000
    try:
        with pytest.raises(S.AppError) as err:
            app.enhance_photo(str(big), run)
        msg = str(err.value)
        assert 'big.png is 600x400 (0.2 megapixels)' in msg and 'Set "Tile size" to 256' in msg
        assert '--memory-limit' in msg
        app.enhance_photo(str(big), run, tile=256)  # as suggested
    finally:
        app.memory_limit = limit
    with pytest.raises(S.AppError, match=r'Tile size 8 is too small: tiles overlap by 16 pixels .*at least 20'):
        app.enhance_photo(str(big), run, tile=8)

    other = yaml.safe_load((root / 'test.yml').read_text())
    other['network_g'] = dict(BASE_TRAIN_OPT['network_g'], num_feat=12)
    (tmp_path / 'other.yml').write_text(yaml.safe_dump(other))
    fresh = S.AppSession(tmp_path / 'out', device='cpu')
    with pytest.raises(S.AppError, match='does not match DeepSPG.*choose the option file it was trained with'):
        fresh.load(str(tmp_path / 'other.yml'), str(root / 'net_g.pth'), '')
    with pytest.raises(S.AppError, match='option file not found: nowhere.yml'):
        fresh.load('nowhere.yml', str(root / 'net_g.pth'), '')
    with pytest.raises(S.AppError, match='ONNX model not found: missing.onnx'):
        fresh.load('', '', 'missing.onnx')
    with pytest.raises(S.AppError, match='no model loaded'):
        fresh.enhance_photo(str(big), run)


def test_command_line_serves_on_loopback_by_default():
    args = cli.parse_args([])
    assert args.host == '127.0.0.1' and args.port == 7860 and args.output == 'results/deepspg_app'
    with pytest.raises(SystemExit):
        cli.parse_args(['--port', '0'])
    with pytest.raises(SystemExit):
        cli.parse_args(['--tile', '-1'])


def test_an_exported_onnx_model_gives_deepspg_enhance_onnxruntime_output(setup, tmp_path):
    from deepspg_basicsr import export as X

    root, _, _ = setup
    onnx_path = str(tmp_path / 'm.onnx')
    assert X.main(['-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth'), '--output', onnx_path]) == 0
    app = S.AppSession(tmp_path / 'out', device='cpu')
    status = app.load('', '', onnx_path)
    assert 'ONNX Runtime (CPUExecutionProvider)' in status and 'THE SEMANTIC PRIOR HAS RANDOM WEIGHTS' in status
    photo = tmp_path / 'dark.png'
    write_demo_photo(photo, size=(52, 68))
    res = app.enhance_photo(str(photo), app.new_run_folder())
    cli = ['--backend', 'onnxruntime', '--onnx', onnx_path, '--device', 'cpu', '--no-progress']
    assert E.main([str(photo), *cli, '--output', str(tmp_path / 'cli')]) == 0
    want = cv2.imread(str(tmp_path / 'cli' / 'dark.png'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.imread(res.download, cv2.IMREAD_UNCHANGED), want)
    assert res.illumination is not None and res.segmentation is None and 'needs the torch backend' in res.legend
