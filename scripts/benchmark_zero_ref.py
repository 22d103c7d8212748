"""Zero-reference against paired DeepSPG on the demo data, with the same training budget.

Runs two trainings through the repository's ``basicsr/train.py`` (each in its own process):

* ``zero_ref``: ``options/train_DeepSPG_ZeroRef_demo.yml``, trained on the demo's low-light images
  only (the ground truth of the test pairs is used for PSNR / SSIM, never in training);
* ``paired``: ``options/train_DeepSPG_demo.yml``, the paired DeepSPG demo.

Both are given the same iterations, batch size, crop size and learning-rate schedule (checked:
the script stops if the two files differ there), and the same validation metrics (PSNR, SSIM,
GT-mean PSNR, NIQE, mean brightness). The option files actually run are written next to the
results. It prints one table (input = the low-light test images themselves, scored against their
ground truth) and writes it as JSON.

Usage::

    python datasets/make_demo_data.py && python scripts/benchmark_zero_ref.py
    python scripts/benchmark_zero_ref.py --iters 100 --only zero_ref --out experiments/zero_ref_bench
"""

import argparse
import copy
import glob
import json
import os
import platform
import subprocess
import sys
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {
    'zero_ref': 'options/train_DeepSPG_ZeroRef_demo.yml',
    'paired': 'options/train_DeepSPG_demo.yml',
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
    opt = copy.deepcopy(opt)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=0, help='override total_iter of both runs (0: as in the files)')
    parser.add_argument('--only', choices=sorted(RUNS), action='append', help='run only this one (repeatable)')
    parser.add_argument('--out', default='experiments/zero_ref_benchmark', help='folder for options and results')
    parser.add_argument('--reuse', action='store_true', help='read the reports of finished runs instead of training')
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    kinds = args.only or list(RUNS)
    previous = {}
    if args.reuse and os.path.isfile(os.path.join(args.out, 'results.json')):
        with open(os.path.join(args.out, 'results.json')) as f:
            previous = json.load(f).get('train_seconds', {})
    opts = {kind: run_options(kind, args.iters, args.out) for kind in RUNS}
    if budget(opts['zero_ref']) != budget(opts['paired']):
        sys.exit(f'the two runs differ in budget:\n{budget(opts["zero_ref"])}\n{budget(opts["paired"])}')

    rows, seconds = {}, {}
    for kind in kinds:
        opt_file = os.path.join(args.out, f'{kind}.yml')
        with open(opt_file, 'w') as f:
            yaml.safe_dump(opts[kind], f, sort_keys=False)
        if args.reuse:
            seconds[kind] = previous.get(kind)
        else:
            start = time.perf_counter()
            cmd = [sys.executable, os.path.join(REPO, 'basicsr', 'train.py'), '-opt', opt_file]
            print('$ ' + ' '.join(cmd), flush=True)
            with open(os.path.join(args.out, f'{kind}.log'), 'w') as log:
                code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
            seconds[kind] = round(time.perf_counter() - start, 1)
            if code != 0:
                sys.exit(f'{kind} training failed ({code}); see {args.out}/{kind}.log')
        report = last_report(os.path.join('experiments', opts[kind]['name']))
        rows.setdefault('input (low-light)', report['input_mean'])
        rows[kind] = report['mean']

    names = list(METRICS)
    print(f'\n{"":20s}' + ''.join(f'{n:>14s}' for n in names) + f'{"train s":>10s}')
    for label, values in rows.items():
        cells = ''.join(f'{values[n]:14.4f}' if isinstance(values[n], float) else f'{values[n]!s:>14s}' for n in names)
        print(f'{label:20s}' + cells + f'{seconds.get(label, ""):>10}')
    result = {
        'rows': rows,
        'train_seconds': seconds,
        'budget': budget(opts['zero_ref']),
        'machine': {'platform': platform.platform(), 'processor': platform.processor(), 'cpus': os.cpu_count()},
        'command': ' '.join([os.path.relpath(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
        'test_images': 'datasets/demo/LOL-v1/eval15 (4 pairs, 200x300 to 227x227, whole images)',
    }
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump(result, f, indent=2)
    print(f'\nwritten: {args.out}/results.json')


if __name__ == '__main__':
    main()
