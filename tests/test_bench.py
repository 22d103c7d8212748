"""The benchmark package (deepspg_basicsr/bench): its core, and every section's ``--quick`` run end to end.

The sections run on random weights at tiny sizes; what is checked is the plumbing and the arithmetic:
finite numbers, ratios computed from the same rounds, blocks written between their markers. Speed
itself is never asserted here (the numbers are in docs/BENCHMARKS.md, made by ``deepspg-bench``).
"""

import ast
import json
import math
import statistics
from pathlib import Path

from deepspg_basicsr.bench import cli, core
from deepspg_basicsr.bench.common import DEMO_ROOT

import pytest

REPO = Path(__file__).resolve().parents[1]

#: A stand-in for Retinexformer's arch file: the same class name and constructor keywords.
STAND_IN_PEER = """
import torch
from torch import nn


class RetinexFormer(nn.Module):
    def __init__(self, in_channels=3, out_channels=3, n_feat=40, stage=1, num_blocks=(1, 2, 2)):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, n_feat, 3, padding=1), nn.GELU(), nn.Conv2d(n_feat, out_channels, 3, padding=1)
        )

    def forward(self, x):
        return self.body(x) + x
"""


# ---- core ---------------------------------------------------------------------------------------
def test_rounds_interleave_after_warmup_and_keep_the_last_outputs():
    calls = []
    fns = {'a': lambda: calls.append('a') or 1, 'b': lambda: calls.append('b') or 2}
    t = core.rounds(fns, repeats=3, warmup=1, keep_outputs=True)
    assert calls == ['a', 'b'] + ['a', 'b'] * 3  # warm-up of each, then a, b in every round
    assert [len(v) for v in t.times.values()] == [3, 3]
    assert t.outputs == {'a': 1, 'b': 2}
    with pytest.raises(ValueError):
        core.rounds(fns, repeats=0)


def test_ratio_is_the_median_of_per_round_ratios_not_a_ratio_of_medians():
    # round 1 was slow for both (load), round 3 for the reference only
    t = core.Timings({'x': [1.0, 2.0, 4.0], 'ref': [2.0, 2.0, 8.0]})
    assert t.per_round_ratios('x', 'ref') == [0.5, 1.0, 0.5]
    assert t.ratio('x', 'ref') == 0.5
    assert t.median('x') / t.median('ref') == 1.0  # what a ratio of medians would have said
    assert t.fmt_ratio('x', 'ref') == '0.50x (0.50-1.00)'
    assert t.fmt('x') == '2.000 s (1.00-4.00, n=3)'
    with pytest.raises(ValueError, match='same rounds'):
        core.Timings({'x': [1.0], 'ref': [1.0, 2.0]}).ratio('x', 'ref')


def test_blocks_replace_only_between_their_markers(tmp_path):
    begin, end = core.markers('peer')
    doc = tmp_path / 'D.md'
    doc.write_text(f'# D\n\nkeep\n{begin}\nold\n{end}\nafter\n')
    other = tmp_path / 'E.md'
    other.write_text('# E, no markers\n')
    written = core.update_docs({'peer': '| new |', 'absent': 'x'}, [str(doc), str(other)])
    assert doc.read_text() == f'# D\n\nkeep\n{begin}\n| new |\n{end}\nafter\n'
    assert other.read_text() == '# E, no markers\n'
    assert written == {'peer': [str(doc)], 'absent': []}
    text, found = core.replace_block('# T\n', 'cuda', 'rows', append=True)
    assert found and text == f'# T\n\n{core.markers("cuda")[0]}\nrows\n{core.markers("cuda")[1]}\n'


def test_report_records_the_machine_and_the_load_at_start_and_end():
    rep = core.Report('sizes', argv=['--quick'], quiet=True)
    rep.block('one')
    rep.table(['a', 'b'], [[1, 2]])
    rep.finish()
    text = rep.texts()['one']
    assert text.startswith('_Made by `deepspg-bench sizes --quick` on ')
    assert 'load average at the start' in text and 'load average at the end' in text
    assert '| a | b |\n|---|---|\n| 1 | 2 |' in text
    m = rep.data['machine']
    assert m['logical_cores'] >= 1 and m['torch'] and len(m['load_start']) == 3 and len(m['load_end']) == 3


# ---- structure ----------------------------------------------------------------------------------
def _local_imports(path, package):
    """Modules of ``package`` imported by ``path`` (relative or absolute), anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1:
                names.update([mod.split('.')[0]] if mod else [a.name for a in node.names])
            elif mod.startswith(package + '.'):
                names.add(mod[len(package) + 1 :].split('.')[0])
    return names


def test_no_import_cycle_in_the_bench_package_and_no_script_imports_another():
    bench = REPO / 'deepspg_basicsr' / 'bench'
    graph = {p.stem: _local_imports(p, 'deepspg_basicsr.bench') for p in bench.glob('*.py')}
    state = {}

    def visit(node, stack):
        state[node] = 'open'
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 'open', f'import cycle: {" -> ".join(stack + [nxt])}'
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 'done'

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert graph['core'] <= set(), 'the core imports no section'
    scripts = {p.stem for p in (REPO / 'scripts').glob('*.py')}
    for path in (REPO / 'scripts').glob('*.py'):
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & scripts, f'{path.name} imports another script'
        assert 'sys.path' not in path.read_text(), f'{path.name} edits sys.path'


def test_every_section_is_listed_and_has_its_interface():
    for name in cli.SECTIONS:
        mod = cli.section_module(name)
        assert callable(mod.add_arguments) and callable(mod.run), name
    assert cli.main(['no-such-section']) == 2


# ---- each section's --quick ---------------------------------------------------------------------
def _finite_numbers(obj):
    """Every int / float in a JSON-like object (``inf`` allowed only where it means identical)."""
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [obj]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _finite_numbers(x)]
    if isinstance(obj, (list, tuple)):
        return [v for x in obj for v in _finite_numbers(x)]
    return []


def _run(section, tmp_path, *extra):
    out, js = tmp_path / f'{section}.md', tmp_path / f'{section}.json'
    rep = cli.run_section(section, ['--quick', '--threads', '1', '--out', str(out), '--json', str(js), *extra])
    data = json.loads(js.read_text())
    assert out.read_text().startswith('_Made by `deepspg-bench ' + section)
    assert 'load_end' in data['machine']
    return rep, data


def _check_times(times):
    lengths = {len(v) for v in times.values()}
    assert len(lengths) == 1, f'rows timed in different numbers of rounds: {lengths}'
    for name, ts in times.items():
        assert all(math.isfinite(t) and t > 0 for t in ts), name


def test_peer_quick_ratios_come_from_the_same_rounds(tmp_path):
    arch = tmp_path / 'stand_in_arch.py'
    arch.write_text(STAND_IN_PEER)
    rep, data = _run('peer', tmp_path, '--retinexformer', str(arch), '--repeats', '3')
    times = data['times']
    _check_times(times)
    assert {peer_row for peer_row in times if peer_row.startswith('Retinexformer')} == {
        'Retinexformer LOL-v1, NCHW (as its repository runs it)',
        'Retinexformer LOL-v1, channels-last (weights and input)',
    }
    fast = data['faster_peer_layout']
    assert statistics.median(times[fast]) == min(
        statistics.median(v) for k, v in times.items() if k.startswith('Retinex')
    )
    for name, r in data['ratios'].items():
        per_round = [a / b for a, b in zip(times[name], times[fast])]
        assert r['vs_fast'] == pytest.approx(statistics.median(per_round), rel=1e-9), name
        assert math.isfinite(r['vs_nchw']) and r['vs_nchw'] > 0
    assert 'DeepSPG default pipeline (DeepSPGPipeline' in rep.texts()['peer']


def test_proof_times_the_variants_iterations_in_the_same_rounds(tmp_path):
    """``proof --time-iterations``: every variant and the peer timed in the same rounds; the equal-time
    iterations are the peer's ``--iters`` over the median per-round ratio, computed here from the times.

    Fails if the ratio is taken of medians or the iterations are scaled the wrong way round."""
    arch = tmp_path / 'stand_in_arch.py'
    arch.write_text(STAND_IN_PEER)
    argv = ['--threads', '1', '--json', str(tmp_path / 't.json'), '--prior', 'demo', '--root', DEMO_ROOT]
    argv += ['--gt-size', '32', '--batch', '2', '--iters', '300', '--time-iterations', '3', '--work', str(tmp_path)]
    argv += ['--variants', 'no semantics', '--retinexformer', str(arch)]
    cli.run_section('proof', argv)
    data = json.loads((tmp_path / 't.json').read_text())
    times, peer = data['times'], 'Retinexformer (peer)'
    _check_times(times)
    assert set(times) == {'no semantics', peer} and len(times[peer]) == 3
    per_round = [a / b for a, b in zip(times['no semantics'], times[peer])]
    assert data['equal_time_iters'] == {'no semantics': round(300 / statistics.median(per_round)), peer: 300}
    assert not list(tmp_path.glob('*_seed*.json'))  # timing only: no job was trained


def test_peer_needs_the_arch_file():
    with pytest.raises(SystemExit, match='--retinexformer'):
        cli.run_section('peer', ['--quick'])


def test_sizes_quick(tmp_path):
    _, data = _run('sizes', tmp_path)
    base = data['enhancer']['base']
    assert 0.5 < base['params_m'] < 0.7  # the preset's size does not depend on the input
    assert 0 < base['encoder_gflops'] < base['gflops']
    assert all(math.isfinite(v) for v in _finite_numbers(data['priors']))


@pytest.mark.slow
def test_inference_quick(tmp_path):
    _, data = _run('inference', tmp_path)
    _check_times(data['latency']['cpu'])


@pytest.mark.slow
def test_train_quick(tmp_path):
    _, data = _run('train', tmp_path)
    res = [v for k, v in data.items() if k.startswith('demo')][0]['cpu']
    _check_times(res['iterations'])
    assert res['ratios']['pixel + edge'] == 1.0
    assert all(math.isfinite(v) and v > 0 for v in res['ratios'].values())


@pytest.mark.slow
def test_deploy_quick(tmp_path):
    _, data = _run('deploy', tmp_path, '--work', str(tmp_path / 'work'))
    size = data['sizes']['96x64']
    _check_times(size['times'])
    ref = 'torch eager, default (pruned prior, BN folded, channels-last, SEM project-first)'
    assert size['changes'][ref][0] == 0.0  # the reference against itself
    ort = size['changes']['ONNX Runtime fp32, default']
    assert ort[0] <= 1e-4  # ONNX Runtime fp32 matches torch


@pytest.mark.slow
def test_memory_quick(tmp_path):
    _, data = _run('memory', tmp_path)
    peaks = [c['peak_rss_mib'] for c in data['cases'].values()]
    assert all(math.isfinite(p) and p > 0 for p in peaks)
    ((name, worst, _),) = data['tiling']['differences']
    assert name == 'tiled vs untiled' and 0 <= float(worst) < 0.05


def _input_psnr_by_hand(root):
    """Mean PSNR (dB) of the demo's unseen low-light photos against their normal-light ones, from the files."""
    import cv2
    import numpy as np

    values = []
    for low in sorted((Path(root) / 'eval15' / 'low').iterdir()):
        a = cv2.imread(str(low)).astype(np.float64)
        b = cv2.imread(str(Path(root) / 'eval15' / 'high' / low.name)).astype(np.float64)
        values.append(10 * math.log10(255**2 / np.mean((a - b) ** 2)))
    assert len(values) >= 2
    return float(np.mean(values))


@pytest.mark.slow
def test_proof_quick(tmp_path):
    """The jobs' numbers are finite; the input row is the mean PSNR of the unseen demo pairs, computed
    here from the files.

    Fails if the input row is taken over other pairs (tried: the first test pair only)."""
    _, data = _run('proof', tmp_path)
    res = data['results']
    assert set(res) == {'input_psnr', 'no semantics', 'gt (oracle)'}
    assert all(math.isfinite(v) for v in _finite_numbers(res))
    assert res['input_psnr'] == pytest.approx(_input_psnr_by_hand(DEMO_ROOT), abs=1e-6)


@pytest.mark.slow
def test_zero_ref_quick(tmp_path):
    """Both runs' numbers are finite; the input row's PSNR is the hand computation on the demo's
    unseen pairs (the runs validate on them).

    Fails if the validation's input row measures something else (tried: the input metrics computed
    on the output in ``LLIEBaseModel``'s validation: 18.08 dB instead of 10.36)."""
    _, data = _run('zero-ref', tmp_path, '--work', str(tmp_path / 'zr'))
    assert set(data['rows']) == {'input (low-light)', 'zero_ref', 'paired'}
    assert all(math.isfinite(v) for v in _finite_numbers(data['rows']))
    assert data['rows']['input (low-light)']['psnr'] == pytest.approx(_input_psnr_by_hand(DEMO_ROOT), abs=1e-4)


def test_a_busy_machine_with_several_threads_is_flagged():
    machine = {'load_start': [3.0, 2.0, 1.0], 'logical_cores': 2, 'torch_threads': 2}
    assert core.busy(machine)
    assert not core.busy(dict(machine, torch_threads=1))
    assert not core.busy(dict(machine, load_start=[0.4, 0.1, 0.1]))
    assert not core.busy(dict(machine, load_start=[float('nan')] * 3))
    rep = core.Report('peer', argv=[], machine=dict(core.machine_record(), **machine), quiet=True)
    rep.block('peer')
    assert 'The machine was busy' in rep.texts()['peer']


def test_a_default_report_prints_lines_and_tables(capsys):
    rep = core.Report()  # as a script uses it: lines and tables, printed as they come
    rep('# T')
    rep.table(['a'], [[1]])
    out = capsys.readouterr().out
    assert '# T' in out and '| a |\n|---|\n| 1 |' in out and '_Made by `deepspg-bench report' in out


def test_a_section_run_leaves_the_logger_level_and_threads_as_they_were(tmp_path):
    import logging

    import torch

    logger = logging.getLogger('basicsr')
    level, threads = logger.level, torch.get_num_threads()
    logger.setLevel(logging.INFO)
    try:
        cli.run_section('sizes', ['--quick', '--threads', '1', '--no-clip', '--out', str(tmp_path / 's.md')])
        assert logger.level == logging.INFO and torch.get_num_threads() == threads
    finally:
        logger.setLevel(level)


def test_a_proof_job_that_collapses_stops_with_one_line_and_status_3(tmp_path, monkeypatch, capsys):
    """A job whose training stops (non-finite loss or collapsed output) ends the run with status 3 and a line
    naming the job and the error; no record is written, so the job runs again next time."""
    from deepspg_basicsr.bench import proof
    from deepspg_basicsr.models import CollapsedOutputError

    def collapsed(opt, batches, seed):
        raise CollapsedOutputError('the output of the whole training batch is exactly 0 at iter 2')

    monkeypatch.setattr(proof, 'train', collapsed)
    root = proof.ensure_demo_data(proof.DEMO_ROOT)
    work = tmp_path / 'work'
    args = ['--root', root, '--prior', 'demo', '--iters', '3', '--gt-size', '32', '--threads', '1', '--no-levers']
    args += ['--out', str(tmp_path / 'p.md'), '--json', str(tmp_path / 'p.json'), '--seeds', '0', '--work', str(work)]
    with pytest.raises(SystemExit) as stop:
        cli.run_section('proof', [*args, '--variants', 'no semantics'])
    assert stop.value.code == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "error: job 'no semantics' seed 0 stopped: CollapsedOutputError: "
        'the output of the whole training batch is exactly 0 at iter 2 (a proof job reruns from the start: '
        'set train.grad_clip_norm or a lower train.optim_g.lr in --options)'
    )
    assert not list(work.glob('*.json')) and not list(work.glob('*.pth'))
