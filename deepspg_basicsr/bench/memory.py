"""Section ``memory``: peak memory of inference, and tiled against untiled enhancement of large images.

Each case in a fresh process (``python -m deepspg_basicsr.bench.memory --worker SPEC``); blocks
``memory`` and ``memory-tiling``; what is measured is in docs/BENCHMARKS.md. **Random weights.**
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

#: Modes of the tiling block (the ``deepspg-enhance`` options they stand for).
TILING_MODES = ('baseline', 'untiled', 'tiled', 'untiled-global', 'tiled-global')


def add_arguments(parser):
    parser.add_argument('--hd', action='store_true', help='also the 1920x1080 untiled cases (minutes each on 2 cores)')
    parser.add_argument('--tiling-size', default='1500x1000', help='WxH of the tiling block (quick: 192x128)')
    parser.add_argument('--tile', type=int, default=512, help='tile of the tiling block (quick: 64)')
    parser.add_argument('--overlap', type=int, default=64, help='overlap of the tiling block (quick: 16)')
    parser.add_argument('--opt', default='options/test_DeepSPG_random_prior_demo.yml', help='tiling: option file')
    parser.add_argument('--worker', help=argparse.SUPPRESS)


def synthetic_dim(h, w, seed=0):
    """A dim image with smooth structure and noise, (1, 3, h, w) in [0, 1], built a channel at a time."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    out = torch.empty(1, 3, h, w)
    for c in range(3):
        base = F.interpolate(torch.rand(1, 1, 16, 16, generator=g), size=(h, w), mode='bicubic', align_corners=False)
        out[0, c] = (0.12 * base[0, 0] + 0.01 * torch.randn(h, w, generator=g)).clamp_(0, 1)
    return out


def fmt_peak(result):
    """(peak MiB, increase over the post-build peak) as text, from a worker's result."""
    if 'cuda_peak_mib' in result:
        return f'{result["cuda_peak_mib"]:.0f}', ''
    return f'{result["peak_rss_mib"]:.0f}', f'+{result["peak_rss_mib"] - result["rss_before_mib"]:.0f}'


def _case_fn(spec, device):
    """One case's callable: the prior or the enhancer alone, or the inference core (``deepspg-enhance``'s) on the
    random-weight model of ``spec['seg']`` (``pipeline``) or of ``spec['opt']`` in ``spec['mode']`` (``enhance``)."""
    from deepspg_basicsr.inference import DeepSPGEnhancer
    from deepspg_basicsr.priors import SegmentationPrior

    import torch

    from .common import CONFIGS, SEG_PRIORS, build, model_options

    kind = spec['kind']
    if kind == 'prior':
        prior, grad = SegmentationPrior(SEG_PRIORS[spec['seg']].seg_config).to(device), spec.get('grad', False)

        def fn(x):
            with torch.set_grad_enabled(grad):
                out = prior(x.to(device).requires_grad_(grad))['logits']
                if grad:
                    out.mean().backward()
            return out

        return fn
    opt = spec.get('opt') or model_options(spec['seg'], extra=CONFIGS[spec.get('config', 'default')])
    if kind in ('enhance', 'pipeline'):  # the whole pipeline, whole or in tiles
        mode = spec.get('mode', 'tiled' if spec.get('tile') else 'untiled')
        tile = 0 if mode.startswith('untiled') else spec['tile']
        options = dict(
            tile=tile, overlap=spec.get('overlap', 32), prior_global=mode.endswith('global'), prior_size=1024
        )
        enhancer = DeepSPGEnhancer(opt, random_weights=True, device=device, **options)
        return lambda x: None if mode == 'baseline' else enhancer.enhance_tensor(x)['out']
    model = build(opt, device)

    def fn(x):  # the enhancer alone, one pass
        with torch.inference_mode():
            x = x.to(device)
            return model._run_net(model.net_g, x, model.sem_features(x), prior=None)

    return fn


def worker(spec):
    """Run one case in this (fresh) process; print ``RESULT {json}``."""
    import torch

    from .common import peak_rss_mib, test_image
    from .core import rounds

    torch.set_num_threads(spec['threads'])
    device = torch.device(spec.get('device', 'cpu'))
    h, w = spec['size']
    fn = _case_fn(spec, device)
    if spec.get('warmup'):
        fn(test_image(min(h, 400), min(w, 600)))
    x = test_image(h, w) if h * w <= 1920 * 1080 and spec['kind'] != 'enhance' else synthetic_dim(h, w)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_rss_mib()
    t = rounds({'case': lambda: fn(x)}, spec.get('runs', 1), warmup=0, device=device, keep_outputs=True)
    out = t.outputs['case']
    result = {'rss_before_mib': before, 'peak_rss_mib': peak_rss_mib(), 'times': t['case']}
    if device.type == 'cuda':
        result['cuda_peak_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
    if spec.get('save') and out is not None:
        np.save(spec['save'], out.float().clamp(0, 1).cpu().numpy())
    print('RESULT ' + json.dumps(result), flush=True)


def run_worker(spec):
    """Run :func:`worker` in a fresh process; its result dict."""
    from .common import ROOT

    cmd = [sys.executable, '-m', 'deepspg_basicsr.bench.memory', '--worker', json.dumps(spec)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + os.environ.get('PYTHONPATH', '').split(os.pathsep)))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT ') :])
    raise RuntimeError(f'memory worker failed ({spec}):\n{proc.stderr[-3000:]}')


def compare(path_a, path_b):
    """(max, mean) absolute difference of two saved (1, 3, H, W) outputs, row by row (bounded memory)."""
    a, b = np.load(path_a, mmap_mode='r'), np.load(path_b, mmap_mode='r')
    worst, total = 0.0, 0.0
    for i in range(a.shape[-2]):
        d = np.abs(a[..., i, :] - b[..., i, :])
        worst, total = max(worst, float(d.max())), total + float(d.sum())
    return worst, total / a.size


def run(rep, args):
    from .common import devices

    if args.quick:
        args.tiling_size, args.tile, args.overlap = '192x128', 64, 16
    seg = 'HRNet-W18-small' if args.quick else 'HRNet-W48'
    small = [64, 96] if args.quick else [400, 600]
    bw, bh = (320, 240) if args.quick else (3840, 2160)  # the tiled case: a 4K image
    cases = [
        (f'{seg} forward, no_grad', {'kind': 'prior', 'size': small}),
        (f'{seg} forward + backward to the input', {'kind': 'prior', 'size': small, 'grad': True}),
        ('whole pipeline, default', {'kind': 'pipeline', 'size': small}),
        ('whole pipeline, fast', {'kind': 'pipeline', 'config': 'fast', 'size': small}),
    ]
    if args.quick:  # one process per case: keep CI short
        cases = cases[:1] + cases[2:3]
    if args.hd and not args.quick:
        hd = {'size': [1080, 1920], 'warmup': True}
        cases += [
            ('enhancer alone, one pass, default, warm-up', dict(hd, kind='enhancer')),
            ('whole pipeline, default, warm-up', dict(hd, kind='pipeline')),
        ]
    tiled = {'kind': 'pipeline', 'config': 'fast', 'size': [bh, bw], 'tile': 512}
    cases.append(('whole pipeline, fast, tiled 512', tiled))
    rows = []
    for device in devices():
        for name, spec in cases:
            res = run_worker(dict(spec, seg=seg, device=device.type, threads=args.threads or 1))
            h, w = spec['size']
            peak, over = fmt_peak(res)
            target = ''
            if spec.get('tile') and (w, h) == (3840, 2160):
                target = f'< 4096 MiB: {"met" if res.get("cuda_peak_mib", res["peak_rss_mib"]) < 4096 else "MISSED"}'
            rows.append([device.type, f'{w}x{h}', name, peak, over, f'{res["times"][0]:.1f} s', target])
            rep.data.setdefault('cases', {})[f'{device.type} {w}x{h} {name}'] = res
    rep.block('memory')
    rep.note(f'{seg} prior, base preset.')
    rep.table(['device', 'size', 'case', 'peak (MiB)', 'over post-build peak (MiB)', 'time', 'target'], rows)
    _tiling(rep, args)


def _tiling(rep, args):
    from .common import parse_size

    w, h = parse_size(args.tiling_size)
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in TILING_MODES[:3] if args.quick else TILING_MODES:
            spec = {'kind': 'enhance', 'mode': mode, 'opt': args.opt, 'size': [h, w], 'tile': args.tile}
            spec.update(overlap=args.overlap, threads=args.threads or 1, save=os.path.join(folder, f'{mode}.npy'))
            res = results[mode] = run_worker(spec)
            peak, over = fmt_peak(res)
            rows.append([mode, peak, over, '' if mode == 'baseline' else f'{res["times"][0]:.1f} s'])
        diffs = []
        for suffix in ('',) if args.quick else ('', '-global'):
            worst, mean = compare(*(os.path.join(folder, f'{m}{suffix}.npy') for m in ('tiled', 'untiled')))
            diffs.append([f'tiled{suffix} vs untiled{suffix}', f'{worst:.1e}', f'{mean:.1e}'])
    rep.block('memory-tiling')
    rep.note(f'`{args.opt}`, random weights, a synthetic dim {w}x{h} image, tile {args.tile}, overlap {args.overlap}.')
    rep.table(['mode', 'peak RSS (MiB)', 'above the post-build peak (MiB)', 'enhance (wall)'], rows)
    rep.table(['comparison (outputs clamped to [0, 1])', 'max abs difference', 'mean abs difference'], diffs)
    rep.data['tiling'] = {'results': results, 'differences': diffs}


if __name__ == '__main__':
    worker(json.loads(sys.argv[sys.argv.index('--worker') + 1]))
