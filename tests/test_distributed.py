"""Distributed training on torch.distributed: CPU (gloo) here, CUDA (nccl) where there is one."""

import shutil

from deepspg_basicsr import compat
from deepspg_basicsr.launch import normalize_argv
from deepspg_basicsr.utils.checkpoint import load_checkpoint_file

import pytest
import torch
import yaml
from basicsr.models import build_model
from llie_test_utils import train_opt
from torch.nn.parallel import DistributedDataParallel
from training_runs import free_port, launch, logged_losses, make_pairs, run_opt


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The same 4 iterations on 4 pairs with a global batch of 4: one process (batch 4) and
    ``torchrun --nproc_per_node=2 ... --launcher pytorch`` (gloo, CPU; 2 ranks x 2), both to the end.
    Returns the folder (experiments under ``experiments/``) and what each run printed."""
    tmp_path = tmp_path_factory.mktemp('ddp')
    data = make_pairs(str(tmp_path / 'pairs'), num=4, size=32)
    files = {}
    for name, batch in (('single', 4), ('ddp', 2)):
        opt = run_opt(name, data, total_iter=4, save_freq=2, batch=batch, augment=False, clip=True)
        files[name] = tmp_path / f'{name}.yml'
        files[name].write_text(yaml.safe_dump(opt))
    port = str(free_port())
    ddp = launch(
        tmp_path,
        files['ddp'],
        '--launcher',
        'pytorch',
        prefix=('-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port', port),
    )
    single = launch(tmp_path, files['single'])
    outs = {}
    for name, proc in (('single', single), ('ddp', ddp)):
        outs[name], _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f'{name}:\n{outs[name][-4000:]}'
    return tmp_path, data, outs


def test_two_cpu_processes_equal_one_process_with_the_same_global_batch(runs):
    """``torchrun --nproc_per_node=2 ... --launcher pytorch`` (gloo, CPU) against one process.

    Same global batch: 2 ranks x 2 images against 1 x 4. BasicSR's EnlargedSampler gives rank r
    the positions r, r + 2, ... of one permutation (seeded by the epoch), so the two ranks' batch j
    together are exactly the single process's batch j; crops are the whole 32x32 images and flips
    are off, so the per-rank seeds do not matter. Every loss is a mean over equal-sized images and
    DDP averages gradients, so the steps agree up to float rounding; the network has no
    BatchNorm and the frozen priors are in eval mode.

    Tolerances (Adam, 4 iterations): logged losses relative 1e-3 (observed: equal to the 5
    logged digits for l_pix / l_edge / l_clip, 1e-4 relative for l_sem, a KL of about 5e-6 between
    nearly equal distributions); final weights absolute 1e-5 (observed about 2e-7).
    """
    tmp_path, _, outs = runs
    exp = tmp_path / 'experiments'
    one, two = logged_losses(outs['single']), logged_losses(outs['ddp'])
    assert sorted(one) == sorted(two) == [1, 2, 3, 4]
    for it in one:
        assert set(one[it]) == set(two[it]) == {'l_pix', 'l_edge', 'l_sem', 'l_clip'}
        for key, value in one[it].items():
            assert two[it][key] == pytest.approx(value, rel=1e-3), (it, key)
    a = load_checkpoint_file(exp / 'single/models/net_g_latest.pth')['params']
    b = load_checkpoint_file(exp / 'ddp/models/net_g_latest.pth')['params']
    assert set(a) == set(b)  # saved without DDP's module. prefix
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5)

    # saved and validated once, by rank 0: one log file, one validation line per validation
    logs = list((exp / 'ddp').glob('train_*.log'))
    assert len(logs) == 1
    assert logs[0].read_text().count('# psnr:') == outs['single'].count('# psnr:') == 3
    assert sorted(p.name for p in (exp / 'ddp/training_states').iterdir()) == ['2.state', '4.state']
    state = load_checkpoint_file(exp / 'ddp/training_states/4.state')
    assert len(state['rng']) == 2 and state['data'] == {'batch_size': 2, 'world_size': 2}


def test_resume_in_one_process_from_a_two_rank_state_continues_the_run(runs):
    """The two-rank run's ``2.state`` resumed by one process (batch 4, the same global batch): the
    sampler says the world size changed and restarts the epoch, the RNG states of 2 ranks are not
    applied to 1, and iterations 3 and 4 equal the uninterrupted runs' (every batch is all 4 pairs,
    whole images, no flips: the order of the data does not matter here; weights, Adam state and
    scheduler come from the state). Same tolerances as the two-rank test.

    Fails if the resumed process does not load the saved weights (``check_resume`` dropped from
    ``load_resume_state``: tried, it trains a fresh network: l_pix 0.112 at iteration 3 instead of 0.094)."""
    tmp_path, data, outs = runs
    exp = tmp_path / 'experiments'
    (exp / 'resumed' / 'training_states').mkdir(parents=True)
    (exp / 'resumed' / 'models').mkdir()
    shutil.copy(exp / 'ddp/models/net_g_2.pth', exp / 'resumed/models/net_g_2.pth')
    opt = run_opt('resumed', data, total_iter=4, save_freq=2, batch=4, augment=False, clip=True)
    opt['path'] = {'resume_state': str(exp / 'ddp/training_states/2.state')}
    (tmp_path / 'resumed.yml').write_text(yaml.safe_dump(opt))
    out, _ = launch(tmp_path, tmp_path / 'resumed.yml').communicate(timeout=300)
    assert 'Resume: batch_size 2 -> 4, world_size 2 -> 1 changed since the state was saved' in out, out[-4000:]
    assert 'RNG states of 2 ranks saved, 1 now: generators not restored' in out
    one, resumed = logged_losses(outs['single']), logged_losses(out)
    assert sorted(resumed) == [3, 4], out[-4000:]
    for it in resumed:
        for key, value in one[it].items():
            assert resumed[it][key] == pytest.approx(value, rel=1e-3), (it, key)
    a = load_checkpoint_file(exp / 'single/models/net_g_latest.pth')['params']
    b = load_checkpoint_file(exp / 'resumed/models/net_g_latest.pth')['params']
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5)


@pytest.fixture
def process_group(monkeypatch):
    """A one-process group through basicsr's init (the compat shim picks the backend)."""
    import basicsr.utils.dist_util as dist_util

    for key, value in (('RANK', '0'), ('LOCAL_RANK', '0'), ('WORLD_SIZE', '1'), ('MASTER_ADDR', '127.0.0.1')):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    dist_util._init_dist_pytorch('nccl')  # what parse_options asks for with --launcher pytorch
    yield torch.distributed
    torch.distributed.destroy_process_group()


def test_dist_init_without_cuda_uses_gloo_and_frozen_priors_are_not_wrapped(process_group):
    if not torch.cuda.is_available():
        assert process_group.get_backend() == 'gloo'
    opt = train_opt(dist=True, rank=0, world_size=1, path={})
    model = build_model(opt)
    assert isinstance(model.net_g, DistributedDataParallel)
    assert model.seg_prior is not None and model.clip_prior is not None
    for prior in (model.seg_prior, model.clip_prior):
        assert not isinstance(prior, DistributedDataParallel)
        assert not any(p.requires_grad for p in prior.parameters())
    gt = torch.rand(2, 3, 32, 32)
    model.feed_data({'lq': gt * 0.2, 'gt': gt})
    model.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_pix', 'l_edge', 'l_sem', 'l_clip'}


def test_non_finite_loss_stops_every_rank_together(process_group):
    from deepspg_basicsr.models import NonFiniteLossError

    model = build_model(
        train_opt(dist=True, rank=0, world_size=1, path={}, train={'semantic_opt': None, 'clip_opt': None})
    )
    gt = torch.rand(2, 3, 32, 32)
    gt[0, 0, 0, 0] = float('inf')
    model.feed_data({'lq': gt.clamp(0, 1) * 0.2, 'gt': gt})
    with pytest.raises(NonFiniteLossError, match='iter 3'):
        model.optimize_parameters(3)


def test_explicit_nccl_without_cuda_is_a_clear_error(monkeypatch):
    import basicsr.utils.dist_util as dist_util

    if torch.cuda.is_available():
        pytest.skip('CUDA present: nccl is fine')
    monkeypatch.setattr(compat, 'DIST_BACKEND', 'nccl')
    with pytest.raises(RuntimeError, match='nccl, which needs CUDA'):
        dist_util._init_dist_pytorch('nccl')


def test_local_rank_spellings_and_opt_alias():
    assert normalize_argv(['--local-rank=1', '--opt', 'a.yml']) == ['--local_rank=1', '-opt', 'a.yml']
    assert normalize_argv(['--local-rank', '3']) == ['--local_rank', '3']


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs 2 CUDA devices')
def test_two_cuda_processes_nccl(tmp_path):
    data = make_pairs(str(tmp_path / 'pairs'), size=32)
    opt = run_opt('ddp_cuda', data, total_iter=2, save_freq=2, augment=False)
    opt['num_gpu'] = 'auto'
    (tmp_path / 'cuda.yml').write_text(yaml.safe_dump(opt))
    proc = launch(
        tmp_path,
        tmp_path / 'cuda.yml',
        '--launcher',
        'pytorch',
        prefix=('-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port', str(free_port())),
    )
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    assert (tmp_path / 'experiments/ddp_cuda/models/net_g_latest.pth').is_file()
