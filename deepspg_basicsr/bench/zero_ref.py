"""Section ``zero-ref``: zero-reference against paired DeepSPG on the demo data, same training budget.

Two trainings through ``basicsr/train.py``, each in its own process: :data:`RUNS` (the budget is
checked equal), the same validation metrics; block ``zero-ref`` (docs/ZERO_REFERENCE.md says how).
"""

import copy
import glob
import json
import os
import subprocess
import sys
import time

import yaml

from .common import ROOT as REPO
from .common import ensure_demo_data

RUNS = {
    'zero_ref': 'options/train_DeepSPG_ZeroRef_demo.yml',
    'paired': 'options/train_DeepSPG_random_prior_demo.yml',
}
#: The validation metrics of both runs.
METRICS = {
    'psnr': {'type': 'calculate_psnr_llie', 'crop_border': 0},
    'ssim': {'type': 'calculate_ssim_llie', 'crop_border': 0},
    'psnr_gt_mean': {'type': 'calculate_psnr_llie', 'crop_border': 0, 'gt_mean': True},
    'niqe': {'type': 'calculate_niqe_llie', 'crop_border': 0},
    'brightness': {'type': 'calculate_brightness_llie'},
}


def budget(opt):
    """What the comparison holds equal: iterations, batch, crop, data passes, schedule, optimiser."""
    train_set = opt['datasets']['train']
    return {
        'total_iter': opt['train']['total_iter'],
        'batch_size_per_gpu': train_set['batch_size_per_gpu'],
        'crop': train_set.get('crop_size', train_set.get('gt_size')),
        'dataset_enlarge_ratio': train_set.get('dataset_enlarge_ratio', 1),
        'optim_g': opt['train']['optim_g'],
        'scheduler': opt['train']['scheduler'],
        'network_g': opt['network_g'],
    }


def run_options(kind, iters, out):
    """The option dict of one run (name, metrics and, optionally, iterations replaced)."""
    with open(os.path.join(REPO, RUNS[kind])) as f:
        opt = yaml.safe_load(f)
    opt['name'] = f'{os.path.basename(out)}_{kind}'
    if iters:
        opt['train']['total_iter'] = iters
        opt['train']['scheduler']['periods'] = [iters]
    opt['val']['val_freq'] = opt['train']['total_iter']
    opt['val']['metrics'] = copy.deepcopy(METRICS)
    opt['logger']['save_checkpoint_freq'] = opt['train']['total_iter']
    return opt


def last_report(experiment):
    """The metric report JSON of the highest iteration of an experiment folder."""
    files = glob.glob(os.path.join(experiment, 'metrics', '*.json'))
    if not files:
        raise FileNotFoundError(f'no metric report under {experiment}/metrics')
    with open(max(files, key=lambda p: int(os.path.splitext(p)[0].rsplit('_', 1)[1]))) as f:
        return json.load(f)


def add_arguments(parser):
    parser.add_argument('--iters', type=int, default=0, help='override total_iter of both runs (0: as in the files)')
    parser.add_argument('--work', default='experiments/zero_ref_benchmark', help='folder for options and results')


def run(rep, args):
    if args.quick:
        args.iters = args.iters or 4
    ensure_demo_data()
    args.work = os.path.abspath(args.work)
    os.makedirs(args.work, exist_ok=True)
    opts = {kind: run_options(kind, args.iters, args.work) for kind in RUNS}
    if budget(opts['zero_ref']) != budget(opts['paired']):
        raise SystemExit(f'the two runs differ in budget:\n{budget(opts["zero_ref"])}\n{budget(opts["paired"])}')
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads or 1))
    rows, seconds = {}, {}
    for kind in RUNS:
        opt_file = os.path.join(args.work, f'{kind}.yml')
        with open(opt_file, 'w') as f:
            yaml.safe_dump(opts[kind], f, sort_keys=False)
        start = time.perf_counter()
        cmd = [sys.executable, os.path.join(REPO, 'basicsr', 'train.py'), '-opt', opt_file]
        print('$ ' + ' '.join(cmd), flush=True)
        with open(os.path.join(args.work, f'{kind}.log'), 'w') as log:
            code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        seconds[kind] = round(time.perf_counter() - start, 1)
        if code != 0:
            raise SystemExit(f'{kind} training failed ({code}); see {args.work}/{kind}.log')
        report = last_report(os.path.join(REPO, 'experiments', opts[kind]['name']))
        rows.setdefault('input (low-light)', report['input_mean'])
        rows[kind] = report['mean']
    names = list(METRICS)
    rep.block('zero-ref')
    b = budget(opts['zero_ref'])
    rep.note(
        f'Both runs: {b["total_iter"]} iterations, batch {b["batch_size_per_gpu"]}, crops {b["crop"]}, the same '
        'schedule and network; demo test images (4 pairs, whole images); random priors.'
    )
    table = []
    for label, values in rows.items():
        cells = [f'{values[n]:.4f}' if isinstance(values[n], float) else str(values[n]) for n in names]
        table.append([label] + cells + [str(seconds.get(label, ''))])
    rep.table(['run'] + names + ['train (s)'], table)
    rep.data.update(rows=rows, train_seconds=seconds, budget=b)
