"""Measure tiled against untiled inference on a large synthetic image: difference and peak memory.

Each measurement runs in its own subprocess, so that the peak resident set sizes are independent:
``baseline`` (input and network built, no forward), ``untiled`` (one forward on the whole image)
and ``tiled`` (:func:`deepspg_basicsr.utils.tiling.tiled_forward`). The outputs are saved as
``.npy`` files and compared by the parent.

Usage::

    python scripts/measure_tiling.py                       # random 4-layer conv net, 2000x3000
    python scripts/measure_tiling.py --tile 512 --overlap 32 --height 2000 --width 3000
    python scripts/measure_tiling.py --opt options/test_X.yml --pad-multiple 4   # a BasicSR network_g
"""

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np


def peak_rss_mib():
    """Peak resident set size of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10


def report_result(result, start, device, out, save_path, digits=3):
    """Finish a worker: elapsed seconds, peak memory, the output saved for comparison, and one
    ``RESULT {json}`` line for the parent process to parse."""
    import torch

    result['seconds'] = round(time.perf_counter() - start, digits)
    result['peak_rss_mib'] = round(peak_rss_mib(), 1)
    if device.type == 'cuda':
        result['peak_cuda_mib'] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    if out is not None:
        np.save(save_path, out.numpy())
    print('RESULT ' + json.dumps(result))


def random_conv_net(seed=0, layers=4, width=8):
    """The translation-equivariant test network: random 3x3 convs + ReLU (as in tests/test_tiling.py)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    chans = [3] + [width] * (layers - 1) + [3]
    mods = []
    for i in range(layers):
        mods.append(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


def network_from_opt(opt_path):
    """Build ``network_g`` of a BasicSR option file and load ``path.pretrain_network_g`` if set."""
    import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

    # isort: split
    from deepspg_basicsr.utils.checkpoint import (
        extract_state_dict,
        load_checkpoint_file,
        load_state_dict_strict,
    )

    import yaml
    from basicsr.archs import build_network

    with open(opt_path) as f:
        opt = yaml.safe_load(f)
    net = build_network(opt['network_g'])
    weights = (opt.get('path') or {}).get('pretrain_network_g')
    if weights:
        load_state_dict_strict(net, extract_state_dict(load_checkpoint_file(weights), weights), weights)
    return net.eval()


def synthetic_image(height, width, seed=0):
    """A dim image with smooth structure and sensor-like noise, (1, 3, H, W) float32 in [0, 1].

    Built one channel at a time, so that making it costs little beyond the image itself.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 12, height).view(height, 1)
    xx = torch.linspace(0, 18, width).view(1, width)
    img = torch.empty(1, 3, height, width)
    for c in range(3):
        torch.mul(torch.sin(yy + c), torch.cos(xx - c), out=img[0, c])
        img[0, c].mul_(0.05).add_(0.08).add_(torch.randn(height, width, generator=gen), alpha=0.01)
    return img.clamp_(0, 1)


def worker(args):
    from deepspg_basicsr.utils import tiling  # every mode imports the same modules

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    net = network_from_opt(args.opt) if args.opt else random_conv_net(width=args.net_width)
    device = torch.device(args.device)
    net = net.to(device)
    x = synthetic_image(args.height, args.width)
    result = {'mode': args.worker, 'threads': torch.get_num_threads()}

    def fn(t):
        return net(t.to(device)).float().cpu()

    start = time.perf_counter()
    with torch.no_grad():
        if args.worker == 'untiled':
            padded, (h, w) = tiling.pad_to_multiple(x, args.pad_multiple)
            out = tiling.crop_to(fn(padded), h, w)
        elif args.worker == 'tiled':
            out = tiling.tiled_forward(fn, x, tile=args.tile, overlap=args.overlap, pad_multiple=args.pad_multiple)
        else:
            out = None
    report_result(result, start, device, out, args.save)


def run_worker(mode, args, folder):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        '--worker',
        mode,
        '--save',
        os.path.join(folder, mode + '.npy'),
    ]
    for name in ('height', 'width', 'tile', 'overlap', 'pad_multiple', 'threads', 'net_width', 'device'):
        cmd += ['--' + name.replace('_', '-'), str(getattr(args, name))]
    if args.opt:
        cmd += ['--opt', args.opt]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        tail = '\n'.join((proc.stderr or proc.stdout).splitlines()[-5:])
        return {'mode': mode, 'failed': f'exit status {proc.returncode}', 'tail': tail}
    return json.loads(lines[-1][len('RESULT ') :])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--height', type=int, default=2000)
    parser.add_argument('--width', type=int, default=3000)
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--pad-multiple', type=int, default=1)
    parser.add_argument('--net-width', type=int, default=8, help='channels of the random conv net')
    parser.add_argument('--opt', default='', help='BasicSR option file whose network_g is measured')
    parser.add_argument('--device', default='cpu', help='where the network runs (tiles are moved there)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    parser.add_argument('--worker', choices=['baseline', 'untiled', 'tiled'], help=argparse.SUPPRESS)
    parser.add_argument('--save', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print('command:', ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv))
    print(f'machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}')
    net_name = args.opt or f'random 4-layer 3x3 conv net, width {args.net_width} (receptive-field radius 4)'
    print(f'network: {net_name}; device: {args.device}')
    print(
        f'image: 1x3x{args.height}x{args.width} float32; tile {args.tile}, overlap {args.overlap}, '
        f'pad_multiple {args.pad_multiple}'
    )
    with tempfile.TemporaryDirectory() as folder:
        results = {mode: run_worker(mode, args, folder) for mode in ('baseline', 'untiled', 'tiled')}
        for res in results.values():
            if 'failed' in res:
                print(f'{res["mode"]:>9}: FAILED ({res["failed"]})\n{res["tail"]}')
                continue
            extra = f', peak CUDA {res["peak_cuda_mib"]} MiB' if 'peak_cuda_mib' in res else ''
            print(
                f'{res["mode"]:>9}: peak RSS {res["peak_rss_mib"]:8.1f} MiB, forward {res["seconds"]:7.2f} s'
                f' ({res["threads"]} threads){extra}'
            )
        if all('failed' not in results[m] for m in ('untiled', 'tiled')):
            untiled = np.load(os.path.join(folder, 'untiled.npy'), mmap_mode='r')
            tiled = np.load(os.path.join(folder, 'tiled.npy'), mmap_mode='r')
            diff = max(float(np.abs(untiled[..., i, :] - tiled[..., i, :]).max()) for i in range(untiled.shape[-2]))
            print(f'max |tiled - untiled| = {diff:.3e} (output {tuple(untiled.shape)})')
            base = results['baseline'].get('peak_rss_mib')
            if base is not None:
                print(
                    f'above baseline: untiled {results["untiled"]["peak_rss_mib"] - base:.1f} MiB, '
                    f'tiled {results["tiled"]["peak_rss_mib"] - base:.1f} MiB'
                )


if __name__ == '__main__':
    main()
