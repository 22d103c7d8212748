"""Nothing lost on a crash, exact resume, bad input, safe checkpoint loading (docs/RELIABILITY.md)."""

import os
import random
from pathlib import Path

from deepspg_basicsr import launch as launcher
from deepspg_basicsr.data import PairedLLIEDataset
from deepspg_basicsr.utils import resume
from deepspg_basicsr.utils.checkpoint import CheckpointError, atomic_torch_save, load_checkpoint_file
from deepspg_basicsr.utils.options_check import OptionError, find_option_problems

import numpy as np
import pytest
import torch
import yaml
from basicsr.models import build_model
from llie_test_utils import train_opt
from training_runs import REPO, kill_when_logged, launch, logged_losses, make_pairs, run_opt


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    return make_pairs(str(tmp_path_factory.mktemp('pairs')))


def _write_opt(path, opt):
    path.write_text(yaml.safe_dump(opt))
    return path


def _wait(proc, timeout):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


# ------------------------------------------------------------------------ crash and exact resume


def test_sigkill_then_auto_resume_continues_exactly(tmp_path):
    """A run killed with SIGKILL while training, after it saved a state, and resumed with
    --auto_resume continues from that state's iteration and logs the same losses as the killed run
    had logged, uninterrupted, for the iterations after the state.

    Mid-epoch on purpose: 10 pairs, batch 2 (5 iterations per epoch), a state every 4 iterations,
    killed as soon as iteration 7 is logged (the state of iteration 8 cannot exist yet), so the
    resumed run must skip 4 batches of epoch 0 (iteration 5 is its last batch) and then go on into
    epoch 1 (iterations 6, 7); random crops, flips and rotations; validation after the save (it
    must not disturb the random generators). Tolerance: none; the logged values (5 significant
    digits) must be equal (CPU, one thread, the same operations in the same order).
    """
    data = make_pairs(str(tmp_path / 'pairs'), num=10)
    opt_file = _write_opt(tmp_path / 'run.yml', run_opt('run', data, total_iter=1000, save_freq=4))
    states = tmp_path / 'experiments/run/training_states'

    text = kill_when_logged(tmp_path, opt_file, 7)
    before = logged_losses(text)
    assert 7 in before, text[-3000:]
    assert sorted(int(p.stem) for p in states.glob('*.state')) == [4]
    assert load_checkpoint_file(states / '4.state')['iter'] == 4
    (states / '.8.state.killed.tmp').write_bytes(b'half a state')  # as if killed during a save

    code, out = _wait(launch(tmp_path, opt_file, '--auto_resume', '--force_yml', 'train:total_iter=8'), 300)
    assert code == 0, out[-3000:]
    assert 'Resuming training from epoch: 0, iter: 4.' in out
    after = logged_losses(out)
    assert sorted(after) == [5, 6, 7, 8]  # nothing repeated, nothing skipped
    for it in (5, 6, 7):
        assert after[it] == before[it], f'iter {it}: resumed {after[it]} vs uninterrupted {before[it]}'
    assert load_checkpoint_file(states / '8.state')['iter'] == 8


NAN_PLUGIN = '''
"""A user's plugin: a registered loss that becomes NaN at its NAN_AT-th call, then the launcher."""
import deepspg_basicsr  # noqa: F401
import torch
from basicsr.utils.registry import LOSS_REGISTRY

NAN_AT = {nan_at}


@LOSS_REGISTRY.register()
class ReliabilityTestNaNAtCallLoss(torch.nn.Module):
    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight
        self.calls = 0

    def forward(self, pred, target):
        self.calls += 1
        loss = self.loss_weight * torch.mean((pred - target) ** 2)
        return loss * float('nan') if self.calls == NAN_AT else loss


if __name__ == '__main__':
    from deepspg_basicsr.train import main

    main()
'''


def test_nan_loss_stops_naming_the_iteration_and_last_checkpoint_stays_loadable(pairs, tmp_path):
    script = tmp_path / 'nan_plugin.py'
    script.write_text(NAN_PLUGIN.format(nan_at=5))
    opt = run_opt('nan', pairs, total_iter=10, save_freq=2)
    opt['train']['pixel_opt'] = {'type': 'ReliabilityTestNaNAtCallLoss', 'loss_weight': 1.0}
    code, out = _wait(launch(tmp_path, _write_opt(tmp_path / 'nan.yml', opt), script=script), 120)
    assert code == 3, out[-3000:]
    assert 'error: non-finite loss at iter 5' in out and 'Traceback' not in out
    exp = tmp_path / 'experiments/nan'
    assert 'non-finite loss at iter 5' in ''.join(p.read_text() for p in exp.glob('train_*.log'))
    assert sorted(p.name for p in exp.glob('models/*')) == ['net_g_2.pth', 'net_g_4.pth']
    assert sorted(p.name for p in exp.glob('training_states/*')) == ['2.state', '4.state']
    assert load_checkpoint_file(exp / 'training_states/4.state')['iter'] == 4
    net = build_model(
        train_opt(
            is_train=False,
            network_g=opt['network_g'],
            path={'pretrain_network_g': str(exp / 'models/net_g_4.pth')},
        )
    ).net_g
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_atomic_save_keeps_the_previous_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / 'net_g_4.pth'
    atomic_torch_save({'params': {'w': torch.ones(3)}}, path)
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 partial')
        raise KeyboardInterrupt  # as a signal would, mid-write

    monkeypatch.setattr(torch, 'save', dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({'params': {'w': torch.zeros(3)}}, path)
    monkeypatch.setattr(torch, 'save', real_save)
    assert torch.equal(load_checkpoint_file(path)['params']['w'], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ['net_g_4.pth']  # the temporary file is gone


def _fake_experiment(root, iters_ok, iters_damaged=()):
    states, models = root / 'training_states', root / 'models'
    states.mkdir(parents=True)
    models.mkdir()
    for it in iters_ok:
        torch.save({'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
        torch.save({'params': {}}, models / f'net_g_{it}.pth')
    for it in iters_damaged:
        (states / f'{it}.state').write_bytes(b'PK\x03\x04 truncated')
        torch.save({'params': {}}, models / f'net_g_{it}.pth')
    (states / '.30.state.x1y2.tmp').write_bytes(b'')
    return {
        'name': 'fake',
        'auto_resume': True,
        'num_gpu': 0,
        'network_g': {'type': 'DeepSPG'},
        'datasets': {'train': {'batch_size_per_gpu': 2}},
        'path': {'training_states': str(states), 'models': str(models)},
    }


def test_auto_resume_skips_temp_files_and_damaged_states(tmp_path, basicsr_log):
    opt = _fake_experiment(tmp_path, iters_ok=(4,), iters_damaged=(8,))
    assert resume.list_states(opt['path']['training_states'])[0].endswith('8.state')  # no .tmp
    state = resume.load_resume_state(opt)
    assert state['iter'] == 4 and opt['path']['resume_state'].endswith('4.state')
    assert opt['path']['pretrain_network_g'].endswith('net_g_4.pth')
    assert any('8.state' in r and 'trying an older state' in r for r in basicsr_log)
    resume._pending = None


def test_training_state_holds_rng_and_data_layout_and_loads_weights_only(tmp_path):
    opt = train_opt(
        path={'models': str(tmp_path), 'training_states': str(tmp_path)},
        datasets={'train': {'batch_size_per_gpu': 3}},
        network_g={'use_semantics': False},
        train={'semantic_opt': None, 'clip_opt': None},
    )
    model = build_model(opt)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    model.save(0, 5)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    state = torch.load(tmp_path / '5.state', weights_only=True)
    assert state['data'] == {'batch_size': 3, 'world_size': 1}
    assert len(state['rng']) == 1 and {'python', 'numpy', 'torch'} <= set(state['rng'][0])
    resume.set_rng_state(state['rng'][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_resumable_sampler_skips_consumed_batches_and_restores_rng():
    dataset = list(range(10))
    full = list(resume.ResumableSampler(dataset, 1, 0))
    random.seed(0)
    rng = resume.rng_state()
    after = random.random()
    # epoch 0 of 10 samples / batch 3 = 3 iterations; a state at iter 5 is 2 batches into epoch 1
    resume._pending = {'epoch': 1, 'iter': 5, 'batch_size': 3, 'data': None, 'rng': [rng]}
    sampler = resume.ResumableSampler(dataset, 1, 0)
    sampler.set_epoch(1)
    random.seed(123)
    reference = resume.ResumableSampler(dataset, 1, 0)
    reference.set_epoch(1)
    assert list(sampler) == list(reference)[6:]
    assert random.random() == after  # restored when the first index was drawn
    sampler.set_epoch(2)
    assert len(list(sampler)) == 10  # later epochs are whole
    assert sorted(full) == dataset

    # a changed batch size: nothing skipped, a warning
    resume._pending = {'epoch': 1, 'iter': 5, 'batch_size': 3, 'data': {'batch_size': 4}, 'rng': None}
    sampler = resume.ResumableSampler(dataset, 1, 0)
    sampler.set_epoch(1)
    assert len(list(sampler)) == 10


# ------------------------------------------------------------------------------------- bad input


def _prepare(monkeypatch, opt_file, *extra, is_train=True):
    monkeypatch.setattr('sys.argv', ['train.py'])
    return launcher.prepare(['-opt', str(opt_file), *extra], is_train=is_train)


def _demo_opt():
    opt = yaml.safe_load((REPO / 'options/train_DeepSPG_demo.yml').read_text())
    for dataset in opt['datasets'].values():  # existing folders, whatever the current folder (data not read)
        dataset.update(dataroot_gt=str(REPO / 'datasets'), dataroot_lq=str(REPO / 'datasets'))
    return opt


BAD_OPTIONS = {
    'no_network_g': (lambda o: o.pop('network_g'), ['missing key `network_g`']),
    'misspelt_section': (
        lambda o: o.__setitem__('netwrok_g', o.pop('network_g')),
        ["missing key `network_g` (did you mean 'netwrok_g'?)"],
    ),
    'misspelt_arch': (
        lambda o: o['network_g'].__setitem__('type', 'DeepSPGG'),
        ["`network_g.type`: no architecture named 'DeepSPGG' is registered (did you mean 'DeepSPG'"],
    ),
    'no_dataroot_gt': (
        lambda o: o['datasets']['train'].pop('dataroot_gt'),
        ['missing key `datasets.train.dataroot_gt`'],
    ),
    'misspelt_model': (lambda o: o.__setitem__('model_type', 'DeepSPGmodel'), ["did you mean 'DeepSPGModel'"]),
    'misspelt_loss': (
        lambda o: o['train']['pixel_opt'].__setitem__('type', 'SPGPixelLos'),
        ["`train.pixel_opt.type`: no loss named 'SPGPixelLos' is registered (did you mean 'SPGPixelLoss'"],
    ),
    'misspelt_metric': (
        lambda o: o['val']['metrics']['psnr'].__setitem__('type', 'calculate_psnr_lie'),
        ["`val.metrics.psnr.type`: no metric named 'calculate_psnr_lie'"],
    ),
    'no_batch_size': (
        lambda o: o['datasets']['train'].pop('batch_size_per_gpu'),
        ['datasets.train.batch_size_per_gpu'],
    ),
    'bad_scheduler': (
        lambda o: o['train']['scheduler'].__setitem__('type', 'CosineAnnealingRestartLr'),
        ["'CosineAnnealingRestartLr' is not one of", "did you mean 'CosineAnnealingRestartLR'"],
    ),
    'no_total_iter': (lambda o: o['train'].pop('total_iter'), ['missing key `train.total_iter`']),
}


@pytest.mark.parametrize('case', sorted(BAD_OPTIONS))
def test_bad_option_file_names_the_key_and_the_file(case, tmp_path, monkeypatch, capsys):
    breaker, expected = BAD_OPTIONS[case]
    opt = _demo_opt()
    breaker(opt)
    opt_file = _write_opt(tmp_path / f'{case}.yml', opt)
    with pytest.raises(SystemExit) as exit_info:
        _prepare(monkeypatch, opt_file)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(opt_file) in err and '1 problem(s)' in err
    for text in expected:
        assert text in err


def test_every_option_problem_at_once_and_force_yml_is_applied(tmp_path, monkeypatch):
    opt = _demo_opt()
    opt.pop('network_g')
    opt['datasets']['train'].pop('dataroot_lq')
    with pytest.raises(OptionError) as err:
        launcher.read_option_file(['-opt', str(_write_opt(tmp_path / 'two.yml', opt))])
    assert len(err.value.problems) == 2
    opt = _demo_opt()
    opt['train']['total_iter'] = 'many'
    opt_file = _write_opt(tmp_path / 'forced.yml', opt)
    with pytest.raises(OptionError, match='train.total_iter'):
        launcher.read_option_file(['-opt', str(opt_file)])
    launcher.read_option_file(['-opt', str(opt_file), '--force_yml', 'train:total_iter=10'])


def test_missing_and_unparsable_option_files(tmp_path):
    with pytest.raises(OptionError, match='does not exist'):
        launcher.read_option_file(['-opt', str(tmp_path / 'nope.yml')])
    (tmp_path / 'bad.yml').write_text('name: [unclosed\n')
    with pytest.raises(OptionError, match='not valid YAML'):
        launcher.read_option_file(['-opt', str(tmp_path / 'bad.yml')])


@pytest.mark.parametrize('path', sorted((REPO / 'options').glob('*.yml')), ids=lambda p: p.name)
def test_shipped_option_files_pass_the_check(path):
    opt = yaml.safe_load(path.read_text())
    assert find_option_problems(opt, is_train=path.name.startswith('train')) == []


def test_basicsr_names_registered_with_a_suffix_pass_the_check():
    opt = _demo_opt()
    opt['model_type'] = 'SRModel'
    opt['network_g'] = {'type': 'SRVGGNetCompact', 'num_feat': 8, 'upscale': 1}
    assert find_option_problems(opt) == []
    opt['network_g']['type'] = 'SRVGGNetCompat'
    assert find_option_problems(opt) == [
        "`network_g.type`: no architecture named 'SRVGGNetCompat' is registered (did you mean 'SRVGGNetCompact'?)"
    ]


def test_dist_backend_of_the_option_file_reaches_the_dist_init(tmp_path, monkeypatch):
    from deepspg_basicsr import compat

    opt = _demo_opt()
    opt['dist_params'] = {'backend': 'gloo'}
    opt_file = _write_opt(tmp_path / 'dist.yml', opt)
    monkeypatch.setattr(compat, 'DIST_BACKEND', None)
    _prepare(monkeypatch, opt_file, '--launcher', 'pytorch', '--local-rank=1')
    assert compat.DIST_BACKEND == 'gloo'
    import sys

    assert '--local_rank=1' in sys.argv


def _tiny_enhancer_opt(**path):
    return train_opt(
        is_train=False, network_g={'use_semantics': False, 'num_feat': 4, 'illum_feat': 4}, path=dict(path)
    )


def test_pretrain_checkpoint_with_mismatched_keys(tmp_path, basicsr_log):
    good = build_model(_tiny_enhancer_opt()).net_g.state_dict()
    wrong = {('renamed.' + k if k.startswith('head.residual') else k): v for k, v in good.items()}
    wrong['embed.weight'] = torch.zeros(1, 1, 1, 1)
    torch.save({'params': wrong}, tmp_path / 'wrong.pth')
    with pytest.raises(CheckpointError) as err:
        build_model(_tiny_enhancer_opt(pretrain_network_g=str(tmp_path / 'wrong.pth')))
    msg = str(err.value)
    assert 'wrong.pth' in msg and 'head.residual.weight' in msg and 'renamed.head.residual' in msg
    assert 'embed.weight' in msg
    # strict_load_g: false loads what matches and says what did not
    model = build_model(_tiny_enhancer_opt(pretrain_network_g=str(tmp_path / 'wrong.pth'), strict_load_g=False))
    assert torch.equal(model.net_g.state_dict()['ups.0.weight'], good['ups.0.weight'])
    assert any('Non-strict load' in r and 'embed.weight' in r for r in basicsr_log)
    torch.save({'something': {}}, tmp_path / 'nokey.pth')
    with pytest.raises(CheckpointError, match="no key 'params'"):
        build_model(_tiny_enhancer_opt(pretrain_network_g=str(tmp_path / 'nokey.pth')))


def test_checkpoint_of_the_earlier_head_names_the_option_that_loads_it(tmp_path):
    earlier = train_opt(
        is_train=False,
        network_g={
            'use_semantics': False,
            'num_feat': 4,
            'illum_feat': 4,
            'head': 'residual',
            'illum_global': False,
            'exposure_head': False,
        },
    )
    torch.save({'params': build_model(earlier).net_g.state_dict()}, tmp_path / 'earlier.pth')
    hint = r'network_g\.head: residual .*network_g\.illum_global: false .*network_g\.exposure_head: false'
    with pytest.raises(CheckpointError, match=hint):
        build_model(_tiny_enhancer_opt(pretrain_network_g=str(tmp_path / 'earlier.pth')))
    earlier['path'] = {'pretrain_network_g': str(tmp_path / 'earlier.pth')}
    loaded = build_model(earlier).net_g  # the option that names the earlier head loads it
    assert torch.equal(loaded.conv_out.weight, torch.load(tmp_path / 'earlier.pth')['params']['conv_out.weight'])


def test_corrupt_image_found_during_training_names_the_file(tmp_path):
    root = make_pairs(str(tmp_path), num=2)
    opt = {
        'name': 'late',
        'type': 'PairedLLIEDataset',
        'dataroot_gt': str(Path(root) / 'high'),
        'dataroot_lq': str(Path(root) / 'low'),
        'phase': 'train',
        'gt_size': 32,
        'check_pairs': False,
    }
    dataset = PairedLLIEDataset(opt)
    broken = Path(root) / 'high' / '1.png'
    broken.write_bytes(broken.read_bytes()[:50])  # truncated after the dataset was built
    dataset[0]
    with pytest.raises(ValueError, match=f"cannot decode '{broken}'"):
        dataset[1]


# -------------------------------------------------------------------------------- safe loading


class _Payload:
    """Unpickling this runs ``os.makedirs(marker)``: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_crafted_pickle_refused_for_pretrain_network_and_loaded_only_when_allowed(tmp_path):
    params = build_model(_tiny_enhancer_opt()).net_g.state_dict()
    marker = tmp_path / 'pwned'
    torch.save({'params': params, 'extra': _Payload(marker)}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match='refused to load .*evil.pth with weights_only=True'):
        build_model(_tiny_enhancer_opt(pretrain_network_g=str(tmp_path / 'evil.pth')))
    assert not marker.exists()
    build_model(_tiny_enhancer_opt(pretrain_network_g=str(tmp_path / 'evil.pth'), allow_unsafe_checkpoint=True))
    assert marker.exists()  # the explicit opt-in runs whatever the file holds: trusted files only


def test_crafted_pickle_refused_for_resume_states_and_loaded_only_when_allowed(tmp_path):
    opt = _fake_experiment(tmp_path, iters_ok=(4,))
    marker = tmp_path / 'pwned'
    evil = {'epoch': 0, 'iter': 6, 'optimizers': [], 'schedulers': [], 'x': _Payload(marker)}
    torch.save(evil, tmp_path / 'training_states/6.state')
    torch.save({'params': {}}, tmp_path / 'models/net_g_6.pth')
    with pytest.raises(CheckpointError, match='refused'):  # never skipped silently for an older one
        resume.load_resume_state(opt)
    evil_path = str(tmp_path / 'training_states/6.state')
    explicit = dict(opt, auto_resume=False, path=dict(opt['path'], resume_state=evil_path))
    with pytest.raises(CheckpointError, match='refused'):
        resume.load_resume_state(explicit)
    assert not marker.exists()
    opt['path']['allow_unsafe_checkpoint'] = True
    assert resume.load_resume_state(opt)['iter'] == 6
    assert marker.exists()
    resume._pending = None


def test_stock_basicsr_models_load_safely_too(tmp_path):
    from basicsr.models.base_model import BaseModel

    assert getattr(BaseModel.load_network, '_deepspg', False)
    marker = tmp_path / 'pwned'
    torch.save({'params': {'w': torch.ones(1)}, 'x': _Payload(marker)}, tmp_path / 'evil.pth')
    opt = {
        'name': 'stock',
        'model_type': 'SRModel',
        'is_train': False,
        'dist': False,
        'num_gpu': 0,
        'scale': 1,
        'network_g': {'type': 'SRVGGNetCompact', 'num_feat': 4, 'num_conv': 1, 'upscale': 1},
        'path': {'pretrain_network_g': str(tmp_path / 'evil.pth')},
    }
    with pytest.raises(CheckpointError, match='refused'):
        build_model(opt)
    assert not marker.exists()
