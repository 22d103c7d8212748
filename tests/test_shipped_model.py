"""The trained DeepSPG that ships with the package (docs/MODEL.md): found by name, checksum
verified, the default of the Python API and of ``deepspg-enhance`` without an option file, and its
output on a fixed image pinned (tests/data/shipped_model_expected.png, written by
``python tests/test_shipped_model.py --pin`` when the shipped weights change)."""

import os

from deepspg_basicsr.data.photo_pairs import darken
from deepspg_basicsr.weights import DEFAULT_ENHANCER, KNOWN_WEIGHTS, PACKAGE_WEIGHTS_DIR, file_sha256, locate_weights

import numpy as np
import pytest

EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'shipped_model_expected.png')
#: Tolerance of the pinned output, in 8-bit grey levels: float rounding differs between CPUs and
#: BLAS builds by far less than one level, so at most 1 level anywhere and rarely at all.
MAX_LEVELS, MEAN_LEVELS = 1, 0.05


def low_light_input():
    """A fixed low-light image: skimage's astronaut, 96x128, darkened by the photo pairs' camera model."""
    import cv2
    from skimage import data

    img = cv2.resize(data.astronaut()[..., ::-1], (128, 96), interpolation=cv2.INTER_AREA)
    return darken(np.ascontiguousarray(img), 0.05, 3000.0, 1e-3, np.random.default_rng(0))


def test_the_shipped_weights_are_packaged_and_verified():
    """Fails if the packaged file changes without its sha256 in the table (or the reverse)."""
    entry = KNOWN_WEIGHTS[DEFAULT_ENHANCER]
    assert entry.kind == 'enhancer' and entry.packaged
    path = os.path.join(PACKAGE_WEIGHTS_DIR, entry.filename)
    assert file_sha256(path) == entry.sha256
    found = locate_weights(DEFAULT_ENHANCER, kind='enhancer', download=False)
    assert found.path == path and found.sha256 == entry.sha256


def test_a_corrupted_shipped_file_is_refused(tmp_path, monkeypatch):
    import shutil

    from deepspg_basicsr.weights import WeightsError
    from deepspg_basicsr.weights import known_weights as K

    entry = KNOWN_WEIGHTS[DEFAULT_ENHANCER]
    copy = tmp_path / entry.filename
    shutil.copy(os.path.join(PACKAGE_WEIGHTS_DIR, entry.filename), copy)
    with open(copy, 'r+b') as f:
        f.seek(1000)
        f.write(b'\x00\x01')
    monkeypatch.setattr(K, 'PACKAGE_WEIGHTS_DIR', str(tmp_path))
    with pytest.raises(WeightsError, match=entry.sha256):
        locate_weights(DEFAULT_ENHANCER, download=False)


def test_the_shipped_model_gives_the_pinned_output():
    """Fails if the default model, its prior, its options record or the inference path changes the
    output by more than float rounding (regenerate with ``--pin`` only when the
    shipped weights change on purpose)."""
    from deepspg_basicsr import DeepSPGEnhancer

    import cv2

    enhancer = DeepSPGEnhancer(device='cpu')  # no option file, no weights: the shipped model
    assert enhancer.weights_name == DEFAULT_ENHANCER and enhancer.random_weights == {'enhancer': False, 'prior': False}
    assert enhancer.info['name'] == DEFAULT_ENHANCER and 'make_photo_pairs' in enhancer.info['trained_on']
    out = enhancer.enhance(low_light_input())
    expected = cv2.imread(EXPECTED, cv2.IMREAD_UNCHANGED)
    diff = np.abs(out.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (diff.max(), diff.mean())
    assert out.mean() > 2 * low_light_input().mean()  # it brightens


def test_the_command_line_without_an_option_file_runs_the_shipped_model(tmp_path, capsys):
    """``deepspg-enhance photo.png --output out/``: the API's output, bit for bit, and the model named."""
    from deepspg_basicsr import DeepSPGEnhancer
    from deepspg_basicsr.enhance import main

    import cv2

    photo = tmp_path / 'photo.png'
    cv2.imwrite(str(photo), low_light_input())
    assert main([str(photo), '--output', str(tmp_path / 'out'), '--device', 'cpu', '--no-progress']) == 0
    assert f'model: {DEFAULT_ENHANCER}: trained on' in capsys.readouterr().err
    written = cv2.imread(str(tmp_path / 'out' / 'photo.png'))
    assert np.array_equal(written, DeepSPGEnhancer(weights=DEFAULT_ENHANCER, device='cpu').enhance(low_light_input()))


def test_the_app_loads_the_shipped_model_when_given_nothing(tmp_path):
    """The page's model status names the shipped model and what it was trained on (no random-weights warning)."""
    from deepspg_basicsr.app.session import AppSession

    session = AppSession(str(tmp_path / 'out'), device='cpu')
    status = session.load('', '', '')
    assert f'`{DEFAULT_ENHANCER}` (known weights, sha256 verified)' in status
    assert 'trained on the training photos of datasets/make_photo_pairs.py' in status
    assert 'RANDOM' not in status and session.random_weights_warnings() == []


def _enhancer_and_shipped_states(model):
    """The state dict of ``model``'s enhancer and the shipped file's weights."""
    from deepspg_basicsr.weights import resolve_weights

    import torch

    shipped = torch.load(resolve_weights(DEFAULT_ENHANCER), weights_only=True)['params']
    return model.get_bare_model(model.net_g).state_dict(), shipped


def test_export_without_an_option_file_builds_the_shipped_model():
    """``deepspg-export --output m.onnx`` exports the shipped model (the export itself is tested in test_deploy)."""
    from deepspg_basicsr.export import build_export_model, parse_args

    import torch

    module, _, model = build_export_model(parse_args(['--output', 'unused.onnx']))
    state, shipped = _enhancer_and_shipped_states(model)
    assert state.keys() == shipped.keys() and all(torch.equal(state[k], shipped[k]) for k in shipped)


def test_basicsr_options_take_the_shipped_model_by_name():
    """``path.pretrain_network_g: deepspg-espnetv2-photos`` passes the options check and loads the verified file
    (fails if the name is only accepted by the inference core, not by BasicSR's model loading)."""
    from pathlib import Path

    from deepspg_basicsr.utils.option_values import find_value_problems

    import torch
    import yaml
    from basicsr.models import build_model

    path = Path(__file__).resolve().parents[1] / 'options' / 'test_DeepSPG_ESPNetv2_photos.yml'
    opt = yaml.safe_load(path.read_text())
    assert opt['path']['pretrain_network_g'] == DEFAULT_ENHANCER
    assert not [p for p in find_value_problems(opt, is_train=False) if 'pretrain_network_g' in p]
    opt.update(is_train=False, dist=False, rank=0, world_size=1, num_gpu=0)
    state, shipped = _enhancer_and_shipped_states(build_model(opt))
    assert all(torch.equal(state[k], shipped[k]) for k in shipped)


if __name__ == '__main__':  # python tests/test_shipped_model.py --pin: write the pinned output again
    import sys

    from deepspg_basicsr import DeepSPGEnhancer
    from deepspg_basicsr.utils.image_io import write_png

    if sys.argv[1:] != ['--pin']:
        sys.exit('usage: python tests/test_shipped_model.py --pin')
    out = DeepSPGEnhancer(device='cpu').enhance(low_light_input())
    write_png(EXPECTED, out)
    print(f'{EXPECTED}: {out.shape}, mean {out.mean():.3f}')
