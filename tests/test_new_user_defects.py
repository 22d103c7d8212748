"""What a new user hit (issue 12, part 3): each defect is a clear error naming the file / key /
option, a fix, or a documented behaviour (docs/RELIABILITY.md, section 6)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr import enhance as E
from deepspg_basicsr import launch as launcher
from deepspg_basicsr.archs.deepspg_arch import DeepSPG
from deepspg_basicsr.data import PairedLLIEDataset
from deepspg_basicsr.data.pair_check import PairCheckError
from deepspg_basicsr.inference import DeepSPGEnhancer
from deepspg_basicsr.utils.checkpoint import CheckpointError, load_checkpoint_file, load_network_weights
from deepspg_basicsr.utils.options_check import OptionError
from deepspg_basicsr.utils.run_folders import rollback_new_folders

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.models import build_model
from llie_test_utils import train_opt
from torch.utils.data import DataLoader
from training_runs import REPO, env, make_pairs

NET = {'type': 'DeepSPG', 'num_feat': 4, 'num_blocks': [1, 1, 1], 'illum_feat': 4, 'num_heads': [1, 1, 1]}


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    return Path(make_pairs(str(tmp_path_factory.mktemp('pairs')), num=3))


@pytest.fixture
def basicsr_log():
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: records.append((record.levelname, record.getMessage()))
    logger = logging.getLogger('basicsr')
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _train_file(tmp_path, pairs, **changes):
    """A valid tiny training option file (demo layout, data in ``pairs``) with ``changes``
    applied (``'a.b.c': value``; value None deletes the key)."""
    opt = yaml.safe_load((REPO / 'options/train_DeepSPG_demo.yml').read_text())
    for dataset in opt['datasets'].values():
        dataset.update(dataroot_gt=str(pairs / 'high'), dataroot_lq=str(pairs / 'low'))
    for keys, value in changes.items():
        *parents, last = keys.split('.')
        section = opt
        for key in parents:
            section = section[key]
        if value is None:
            section.pop(last)
        else:
            section[last] = value
    path = tmp_path / 'opt.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def _problems(opt_file, is_train=True, *extra):
    with pytest.raises(OptionError) as err:
        launcher.read_option_file(['-opt', str(opt_file), *extra], is_train)
    return err.value.problems


# ---- 1. test.py without weights ---------------------------------------------------------------


def test_test_run_without_weights_is_refused_unless_asked_for(tmp_path, pairs):
    opt = yaml.safe_load((REPO / 'options/test_DeepSPG_demo.yml').read_text())
    opt['datasets']['test'].update(dataroot_gt=str(pairs / 'high'), dataroot_lq=str(pairs / 'low'))
    opt['path']['pretrain_network_g'] = None
    path = tmp_path / 'test.yml'
    path.write_text(yaml.safe_dump(opt))
    (problem,) = _problems(path, False)
    assert problem.startswith('missing key `path.pretrain_network_g`: a test run would benchmark an untrained')
    assert 'path.random_weights_g: true' in problem
    opt['path']['random_weights_g'] = True
    path.write_text(yaml.safe_dump(opt))
    launcher.read_option_file(['-opt', str(path)], is_train=False)  # explicit opt-in passes
    opt['path'].update(pretrain_network_g=str(tmp_path / 'net_g_missing.pth'), random_weights_g=False)
    path.write_text(yaml.safe_dump(opt))
    assert _problems(path, False) == [
        f"`path.pretrain_network_g`: the file '{tmp_path / 'net_g_missing.pth'}' does not exist"
    ]


# ---- 2. gt_size far larger than the images ---------------------------------------------------------


@pytest.mark.parametrize('check_pairs', [True, False])
def test_gt_size_far_larger_than_the_images_is_refused_naming_the_key(pairs, check_pairs):
    opt = {
        'name': 'big',
        'type': 'PairedLLIEDataset',
        'dataroot_gt': str(pairs / 'high'),
        'dataroot_lq': str(pairs / 'low'),
        'phase': 'train',
        'gt_size': 2048,
        'check_pairs': check_pairs,
    }
    if check_pairs:  # when the data set is built: nothing is padded, nothing trains
        with pytest.raises(PairCheckError) as err:
            PairedLLIEDataset(opt)
    else:  # sizes unknown until read: the first item says it
        dataset = PairedLLIEDataset(opt)
        with pytest.raises(PairCheckError) as err:
            dataset[0]
    msg = str(err.value)
    assert 'datasets.train.gt_size 2048 is more than twice the side of' in msg
    assert '40x40' in msg and 'Use gt_size <= 80' in msg
    assert PairedLLIEDataset(dict(opt, gt_size=80))[0]['gt'].shape == (3, 80, 80)  # the bound itself is fine


# ---- 3, 5. option values that escaped the checks ------------------------------------------------------

BAD_VALUES = {
    'total_iter_0': ({'train.total_iter': 0}, '`train.total_iter` must be at least 1, got 0'),
    'batch_size_0': (
        {'datasets.train.batch_size_per_gpu': 0},
        '`datasets.train.batch_size_per_gpu` must be at least 1, got 0',
    ),
    'negative_lr': ({'train.optim_g.lr': -1e-3}, '`train.optim_g.lr` must be positive, got -0.001'),
    'misspelt_lr': (
        {'train.optim_g.lr': None, 'train.optim_g.lrr': 1e-3},
        "`train.optim_g.lrr`: Adam takes no argument 'lrr' (did you mean 'lr'?)",
    ),
    'lr_as_string': ({'train.optim_g.lr': '1e-3'}, "`train.optim_g.lr` must be a number, got str '1e-3' (YAML and"),
    'unknown_optimizer': ({'train.optim_g.type': 'adam'}, "not a torch.optim optimiser (did you mean 'Adam'"),
    'missing_dataroot': (
        {'datasets.val.dataroot_lq': 'datasets/nowhere/low'},
        "`datasets.val.dataroot_lq`: 'datasets/nowhere/low' does not exist",
    ),
    'val_freq_0': ({'val.val_freq': 0}, '`val.val_freq` must be at least 1, got 0'),
}


@pytest.mark.parametrize('case', sorted(BAD_VALUES))
def test_bad_option_values_stop_before_any_folder_is_made(case, tmp_path, pairs, monkeypatch, capsys):
    changes, expected = BAD_VALUES[case]
    opt_file = _train_file(tmp_path, pairs, **changes)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr('sys.argv', ['train.py'])
    with pytest.raises(SystemExit) as exit_info:
        launcher.prepare(['-opt', str(opt_file)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(opt_file) in err and expected in err, err
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.parametrize('path', sorted((REPO / 'options').glob('*.yml')), ids=lambda p: p.name)
def test_shipped_option_files_pass_the_value_check(path):
    from deepspg_basicsr.utils.option_values import find_value_problems

    problems = find_value_problems(yaml.safe_load(path.read_text()), is_train=path.name.startswith('train'))
    assert [p for p in problems if 'does not exist' not in p] == []  # data and weights are the user's


def test_pretrain_file_is_not_required_when_resuming(tmp_path, pairs):
    opt_file = _train_file(tmp_path, pairs, **{'path.pretrain_network_g': str(tmp_path / 'gone.pth')})
    assert _problems(opt_file) == [f"`path.pretrain_network_g`: the file '{tmp_path / 'gone.pth'}' does not exist"]
    launcher.read_option_file(['-opt', str(opt_file), '--auto_resume'])  # the state's net_g is used


def _fake_run(folder, produce):
    """What BasicSR's mkdir_and_rename + a run does: archive, make, write a log (and ``produce``)."""
    if folder.exists():
        folder.rename(folder.parent / f'{folder.name}_archived_20260101_000000')
    (folder / 'models').mkdir(parents=True)
    (folder / 'train_x.log').write_text('log')
    if produce:
        (folder / 'models' / 'net_g_5.pth').write_bytes(b'x')
    raise RuntimeError('boom')


def test_a_failed_run_puts_the_folders_back(tmp_path):
    new = tmp_path / 'experiments' / 'fresh'
    with pytest.raises(RuntimeError), rollback_new_folders([str(new)]):
        _fake_run(new, produce=False)
    assert not new.exists() and not new.parent.exists()  # no empty experiment (nor experiments/) left behind
    good = tmp_path / 'results' / 'good'
    good.mkdir(parents=True)
    (good / 'metrics_x.json').write_text('{}')
    with pytest.raises(RuntimeError), rollback_new_folders([str(good)]):
        _fake_run(good, produce=False)
    assert (good / 'metrics_x.json').is_file() and sorted(p.name for p in good.parent.iterdir()) == ['good']
    with pytest.raises(RuntimeError), rollback_new_folders([str(new)]):
        _fake_run(new, produce=True)  # a run that saved a checkpoint keeps its folder (resume needs it)
    assert (new / 'models' / 'net_g_5.pth').is_file()


def test_failed_test_run_keeps_the_previous_results_and_names_the_bad_checkpoint(tmp_path, pairs):
    """End to end: ``basicsr/test.py`` with a weights file of random bytes."""
    (tmp_path / 'net_g.pth').write_bytes(np.random.default_rng(0).bytes(4096))
    opt = {
        'name': 'bench',
        'model_type': 'DeepSPGModel',
        'num_gpu': 0,
        'datasets': {'test': {'name': 't', 'type': 'PairedLLIEDataset', 'dataroot_gt': str(pairs / 'high'),
                              'dataroot_lq': str(pairs / 'low')}},
        'network_g': dict(NET, use_semantics=False),
        'path': {'pretrain_network_g': str(tmp_path / 'net_g.pth')},
        'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr_llie', 'crop_border': 0}}},
    }  # fmt: skip
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(opt))
    previous = tmp_path / 'results' / 'bench'
    previous.mkdir(parents=True)
    (previous / 'metrics_t.json').write_text('{"good": true}')
    proc = subprocess.run(
        [sys.executable, str(REPO / 'basicsr/test.py'), '-opt', 'test.yml'],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and f'{tmp_path / "net_g.pth"} is not a PyTorch checkpoint' in last
    assert 'Traceback' not in proc.stderr and 'pickled objects' not in proc.stderr
    assert sorted(p.name for p in (tmp_path / 'results').iterdir()) == ['bench']  # nothing archived
    assert (previous / 'metrics_t.json').read_text() == '{"good": true}'


# ---- 6. files that are not checkpoints ----------------------------------------------------------------


def test_random_bytes_empty_and_truncated_files_are_named_as_such(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / 'random.pth').write_bytes(b'\x00' + rng.bytes(5000))
    (tmp_path / 'empty.pth').write_bytes(b'')
    torch.save({'params': {'w': torch.randn(64, 64)}}, tmp_path / 'good.pth')
    whole = (tmp_path / 'good.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(whole[: len(whole) // 2])
    expected = {
        'random.pth': 'is not a PyTorch checkpoint: it is neither a zip archive (torch.save) nor a pickle',
        'empty.pth': 'is empty (0 bytes)',
        'cut.pth': 'is truncated or corrupt: it starts like a torch.save zip archive but the archive is incomplete',
    }
    for name, text in expected.items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint_file(tmp_path / name)
        msg = str(err.value)
        assert str(tmp_path / name) in msg and text in msg, msg
        assert 'allow_unsafe_checkpoint' not in msg  # no advice to unpickle what is no checkpoint
    assert torch.equal(
        load_checkpoint_file(tmp_path / 'good.pth')['params']['w'], torch.load(tmp_path / 'good.pth')['params']['w']
    )


# ---- 8. param keys ----------------------------------------------------------------------------------------


def test_param_keys_bare_state_dicts_and_unknown_keys(tmp_path, basicsr_log):
    net = DeepSPG(**{k: v for k, v in NET.items() if k != 'type'}, use_semantics=False)
    state = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / 'bare.pth')
    torch.save({'params': state}, tmp_path / 'plain.pth')
    for key in ('params', 'params_ema', 'anything'):  # a bare state dict loads whatever the key
        fresh = DeepSPG(**{k: v for k, v in NET.items() if k != 'type'}, use_semantics=False)
        load_network_weights(fresh, str(tmp_path / 'bare.pth'), param_key=key)
        assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(CheckpointError) as err:  # an unknown key no longer falls back silently
        load_network_weights(net, str(tmp_path / 'plain.pth'), param_key='params_emaa')
    assert "has no key 'params_emaa'" in str(err.value) and "['params']" in str(err.value)
    load_network_weights(net, str(tmp_path / 'plain.pth'), param_key='params_ema')  # BasicSR's one fallback
    assert any(level == 'WARNING' and 'has no params_ema' in msg for level, msg in basicsr_log)


# ---- 8. the final metric report's iteration --------------------------------------------------------------


def test_final_validation_is_reported_at_total_iter(tmp_path, pairs):
    opt = train_opt(
        network_g=dict(NET, use_semantics=False),
        train={'total_iter': 5, 'semantic_opt': None, 'clip_opt': None},
        path={'experiments_root': str(tmp_path)},
        val={'metrics': {'psnr': {'type': 'calculate_psnr_llie', 'crop_border': 0}}, 'report_input': False},
    )
    model = build_model(opt)
    data = PairedLLIEDataset(
        {
            'name': 'v',
            'type': 'PairedLLIEDataset',
            'dataroot_gt': str(pairs / 'high'),
            'dataroot_lq': str(pairs / 'low'),
        }
    )
    model.validation(DataLoader(data, batch_size=1), current_iter=7, tb_logger=None, save_img=False)  # BasicSR's 5 + 2
    assert [p.name for p in (tmp_path / 'metrics').iterdir()] == ['v_5.json']
    assert yaml.safe_load((tmp_path / 'metrics' / 'v_5.json').read_text())['iter'] == 5


# ---- 8. the bright edge line of dark images ---------------------------------------------------------------


@pytest.mark.parametrize('size', [(64, 96), (37, 50)])
def test_a_constant_image_has_no_border_effect(size):
    """The bright 1-2 px line along the edges of dark images came from zero padding: every
    padded convolution saw a black frame around its feature map. With replicate padding a
    constant map stays constant, so a constant image must give a constant illumination map and,
    when the transposed-convolution upsampling is made constant-preserving (equal taps; trained
    ones are not, which leaves a 4 x 4 pattern, measured below 0.5 grey levels on the demo
    model, docs/RELIABILITY.md), a constant output: no row or column differs. With zero padding
    (``padding_mode: zeros``, the former behaviour) the first rows differ."""
    h, w = size
    x = torch.full((1, 3, h, w), 0.7 / 255)
    sem = [torch.full((1, c, 16, 16), 0.3) for c in (18, 36, 72)]  # constant prior features
    spread = {}
    for mode in ('replicate', 'zeros'):
        torch.manual_seed(0)
        net = DeepSPG(num_feat=8, num_blocks=[1, 1, 1], illum_feat=8, sem_channels=[18, 36, 72], padding_mode=mode)
        for p in net.parameters():  # non-zero everywhere (SEM and the output conv start near identity)
            torch.nn.init.normal_(p, std=0.1)
        for up in net.ups:  # equal taps: upsampling a constant map gives a constant map
            up.weight.data[:] = up.weight.data[..., :1, :1]
        with torch.no_grad():
            res = net.enhance(x, sem)
        spread[mode] = {
            k: float((res[k].amax((2, 3)) - res[k].amin((2, 3))).max()) * 255 for k in ('out', 'illumination')
        }
    assert spread['replicate']['illumination'] < 1e-4 and spread['replicate']['out'] < 1e-3, spread
    assert spread['zeros']['illumination'] > 0.1 and spread['zeros']['out'] > 1, spread  # the test can tell


# ---- 4, 7, 8. deepspg-enhance ---------------------------------------------------------------------


@pytest.fixture(scope='module')
def enhancer(tmp_path_factory):
    root = tmp_path_factory.mktemp('enh')
    torch.manual_seed(0)
    opt = train_opt(is_train=False, network_g=dict(NET, use_semantics=False))  # no prior: fast, maps still there
    model = build_model(opt)
    torch.save({'params': model.net_g.state_dict()}, root / 'net_g.pth')
    return root, model


def _enhance(monkeypatch, model, *argv):
    monkeypatch.setattr(
        E, 'build_enhancer', lambda args, device: DeepSPGEnhancer.from_model(model, **E.run_options(args))
    )
    return E.main([*map(str, argv), '--device', 'cpu', '--no-progress'])


def test_same_stem_pictures_are_kept_apart_and_earlier_results_are_not_overwritten(
    enhancer, tmp_path, monkeypatch, capsys
):
    _, model = enhancer
    rng = np.random.default_rng(2)
    (tmp_path / 'in').mkdir()
    for name in ('s.png', 's.jpg', 't.png'):
        cv2.imwrite(str(tmp_path / 'in' / name), rng.integers(0, 60, (24, 32, 3), dtype=np.uint8))
    out = tmp_path / 'out'
    argv = [tmp_path / 'in', '--output', out, '--save-compare', '--save-maps']
    assert _enhance(monkeypatch, model, *argv) == 0, capsys.readouterr().err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file())
    assert written == [
        'compare/s.jpg.png', 'compare/s.png.png', 'compare/t.png',
        'maps/s.jpg_illumination.png', 'maps/s.jpg_reflectance.png', 'maps/s.png_illumination.png',
        'maps/s.png_reflectance.png', 'maps/t_illumination.png', 'maps/t_reflectance.png',
        's.jpg', 's.png', 't.png',
    ]  # fmt: skip
    before = (out / 't.png').read_bytes()
    cv2.imwrite(str(tmp_path / 'in' / 't.png'), np.zeros((24, 32, 3), np.uint8))
    assert _enhance(monkeypatch, model, *argv) == 2  # a rerun into the same folder: refused
    err = capsys.readouterr().err
    assert '12 output file(s) already exist in --output' in err and 'pass --overwrite' in err
    assert (out / 't.png').read_bytes() == before
    assert _enhance(monkeypatch, model, *argv, '--overwrite') == 0
    assert (out / 't.png').read_bytes() != before


def test_output_that_is_a_file_or_impossible_is_a_usage_error(enhancer, tmp_path, monkeypatch, capsys):
    root, model = enhancer
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((8, 8, 3), 20, np.uint8))
    (tmp_path / 'file.txt').write_text('x')
    weights = ['--weights', root / 'net_g.pth']
    assert _enhance(monkeypatch, model, tmp_path / 'a.png', '-o', tmp_path / 'file.txt', *weights) == 2
    assert f'--output {tmp_path / "file.txt"} exists and is not a folder' in capsys.readouterr().err
    assert _enhance(monkeypatch, model, tmp_path / 'a.png', '-o', tmp_path / 'file.txt' / 'sub', *weights) == 2
    assert f'--output {tmp_path / "file.txt" / "sub"}: cannot create the folder' in capsys.readouterr().err


def test_counts_tile_message_and_ctrl_c(enhancer, tmp_path, monkeypatch, capsys):
    _, model = enhancer
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((8, 8, 3), 20, np.uint8))
    out = tmp_path / 'out'
    assert _enhance(monkeypatch, model, tmp_path / 'a.png', tmp_path / 'missing.png', '-o', out) == 1
    err = capsys.readouterr().err
    assert '1 of 2 images written' in err and 'missing.png: no such file or folder' in err
    with pytest.raises(SystemExit) as exit_info:
        E.parse_args([str(tmp_path / 'a.png'), '-o', str(out), '--tile', '32'])
    assert exit_info.value.code == 2
    assert '--tile 32 must be larger than --overlap 64 (the default)' in capsys.readouterr().err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, 'process_file', interrupted)
    assert _enhance(monkeypatch, model, tmp_path / 'a.png', '-o', tmp_path / 'out2') == 130
    err = capsys.readouterr().err
    assert 'interrupted (Ctrl-C): 0 of 1 images written' in err and 'Traceback' not in err


def test_ctrl_c_in_train_and_test_is_one_line(tmp_path, pairs, monkeypatch, capsys):
    opt_file = _train_file(tmp_path, pairs)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr('sys.argv', ['train.py', '-opt', str(opt_file)])

    def pipeline(root):
        os.makedirs(os.path.join(root, 'experiments', 'DeepSPG_demo'))
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        launcher.run_guarded(pipeline, str(tmp_path), is_train=True)
    assert exit_info.value.code == 130
    assert 'interrupted (Ctrl-C); resume from the last saved checkpoint with --auto_resume' in capsys.readouterr().err
    assert not (tmp_path / 'experiments' / 'DeepSPG_demo').exists()  # nothing was saved: nothing left
