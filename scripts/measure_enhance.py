"""Measure ``deepspg-enhance``'s tiled processing on a large image: difference to untiled, peak memory.

The enhancer is built exactly as the command line builds it (:func:`deepspg_basicsr.enhance.build_enhancer`)
from a test option file (default ``options/test_DeepSPG_demo.yml``: DeepSPG base width, HRNet-W18-small
prior, C2F on), with **random weights** unless ``--weights`` is given (the prior's weights are random
too unless the option file names a checkpoint). Each measurement runs in its own subprocess so that
the peak resident set sizes are independent:

* ``baseline``: model built and image made, no enhancement;
* ``untiled`` / ``tiled``: the prior runs on the image / on each tile;
* ``untiled-global`` / ``tiled-global``: ``--prior-global``, the prior runs on the whole image
  downscaled to ``--prior-size`` and each tile gets the crop of those features.

The differences are taken within a prior mode (tiled against untiled), on the outputs clamped to
[0, 1]. Usage::

    python scripts/measure_enhance.py                                   # 2000x3000, tile 512, overlap 64
    python scripts/measure_enhance.py --height 500 --width 750 --modes untiled tiled
    python scripts/measure_enhance.py --opt options/test_DeepSPG_LOLv1.yml --weights net_g.pth --device cuda
"""

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

MODES = ('baseline', 'untiled', 'tiled', 'untiled-global', 'tiled-global')


def worker(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from deepspg_basicsr import enhance

    import torch
    from measure_tiling import report_result, synthetic_image

    if args.threads:
        torch.set_num_threads(args.threads)
    cli = ['unused', '--output', 'unused', '--device', args.device, '-opt', args.opt]
    cli += ['--weights', args.weights] if args.weights else ['--random-weights']
    device = enhance.resolve_device(args.device, False)
    model = enhance.build_enhancer(enhance.parse_args(cli), device)
    x = synthetic_image(args.height, args.width)
    result = {'mode': args.worker, 'threads': torch.get_num_threads()}
    start = time.perf_counter()
    out = None
    if args.worker != 'baseline':
        tile = 0 if args.worker.startswith('untiled') else args.tile
        out = enhance.enhance_tensor(
            model,
            x,
            tile=tile,
            overlap=args.overlap,
            prior_global=args.worker.endswith('global'),
            prior_size=args.prior_size,
            device=device,
        )['out']
    report_result(result, start, device, out, args.save, digits=2)


def run_worker(mode, args, folder):
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', mode, '--save', os.path.join(folder, mode + '.npy')]
    for name in ('opt', 'height', 'width', 'tile', 'overlap', 'prior_size', 'threads', 'device'):
        cmd += ['--' + name.replace('_', '-'), str(getattr(args, name))]
    if args.weights:
        cmd += ['--weights', args.weights]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        tail = '\n'.join((proc.stderr or proc.stdout).splitlines()[-8:])
        return {'mode': mode, 'failed': f'exit status {proc.returncode}', 'tail': tail}
    return json.loads(lines[-1][len('RESULT ') :])


def compare(path_a, path_b):
    """(max, mean) absolute difference of two saved (1, 3, H, W) outputs, row by row (bounded memory)."""
    a, b = np.load(path_a, mmap_mode='r'), np.load(path_b, mmap_mode='r')
    worst, total = 0.0, 0.0
    for i in range(a.shape[-2]):
        d = np.abs(a[..., i, :] - b[..., i, :])
        worst, total = max(worst, float(d.max())), total + float(d.sum())
    return worst, total / a.size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--opt', default='options/test_DeepSPG_demo.yml', help='test option file (network_g, prior)')
    parser.add_argument('--weights', default='', help='enhancer weights (default: random)')
    parser.add_argument('--height', type=int, default=2000)
    parser.add_argument('--width', type=int, default=3000)
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=64)
    parser.add_argument('--prior-size', type=int, default=1024)
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    parser.add_argument('--json', default='', help='also write the results to this JSON file')
    parser.add_argument('--worker', choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument('--save', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    command = ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)
    print('command:', command)
    print(f'machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}')
    print(f'enhancer: {args.opt}, weights: {args.weights or "RANDOM (untrained)"}; device {args.device}')
    print(
        f'image: 1x3x{args.height}x{args.width} float32; tile {args.tile}, overlap {args.overlap}, '
        f'prior size (global mode) {args.prior_size}'
    )
    summary = {'command': command, 'args': vars(args), 'results': {}, 'differences': {}}
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.modes:
            res = run_worker(mode, args, folder)
            summary['results'][mode] = res
            if 'failed' in res:
                print(f'{mode:>15}: FAILED ({res["failed"]})\n{res["tail"]}', flush=True)
                continue
            extra = f', peak CUDA {res["peak_cuda_mib"]} MiB' if 'peak_cuda_mib' in res else ''
            print(
                f'{mode:>15}: peak RSS {res["peak_rss_mib"]:8.1f} MiB, enhance {res["seconds"]:8.2f} s '
                f'({res["threads"]} threads){extra}',
                flush=True,
            )
        for suffix in ('', '-global'):
            a, b = os.path.join(folder, f'untiled{suffix}.npy'), os.path.join(folder, f'tiled{suffix}.npy')
            if os.path.isfile(a) and os.path.isfile(b):
                worst, mean = compare(a, b)
                summary['differences'][f'tiled{suffix} vs untiled{suffix}'] = {'max': worst, 'mean': mean}
                print(f'|tiled{suffix} - untiled{suffix}|: max {worst:.3e}, mean {mean:.3e}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=2)


if __name__ == '__main__':
    main()
