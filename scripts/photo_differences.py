"""How much of a PSNR difference between two saved proof networks the choice of test photos can explain.

The proof's tables pair networks by seed and report the spread over seeds; a difference can also come from
which few photos were drawn for the test. This script scores every saved seed of two networks on each test
photo (plain PSNR and SSIM, as the proof scores them), averages each photo over the seeds, and reports the
per-photo differences: their mean (the table's difference), their spread over the photos, the standard error
of that mean over photos with a 95 % interval (Student's t), how many photos go each way, and how many photos
a test would need for a 2-standard-error resolution of a given difference.

Usage::

    python scripts/photo_differences.py 'prior=results/proof:input (default)' 'none=results/proof:no semantics' \\
        --iters 1000 --gt-size 128 [--retinexformer RetinexFormer_arch.py] [--resolve 0.5]
"""

import argparse
import math

from deepspg_basicsr.bench import proof
from deepspg_basicsr.metrics.llie_psnr_ssim import calculate_psnr_llie, calculate_ssim_llie

import numpy as np
import torch
from basicsr.utils import tensor2img
from scipy import stats


def photo_difference_stats(a, b, resolve=0.5):
    """Per-photo differences of two networks' scores and what they say about the mean difference.

    Args:
        a, b (array-like): Scores (S_a, P) and (S_b, P): each network's seeds by the same P photos.
        resolve (float): The difference a test should resolve at 2 standard errors. Default: 0.5.

    Returns:
        dict: ``per_photo`` (P,) seed-averaged differences a - b; ``mean``; ``std`` over photos (ddof 1);
        ``sem`` (std / sqrt(P)); ``ci95`` (low, high) from Student's t with P - 1 degrees of freedom;
        ``better`` / ``worse`` (photos with a difference above / below 0); ``photos_needed``, the number of
        photos whose standard error is ``resolve / 2`` at this spread.
    """
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f'the two networks were scored on {a.shape[1]} and {b.shape[1]} photos')
    per_photo = a.mean(axis=0) - b.mean(axis=0)
    n = per_photo.size
    if n < 2:
        raise ValueError('needs at least 2 photos')
    mean, std = float(per_photo.mean()), float(per_photo.std(ddof=1))
    sem = std / math.sqrt(n)
    half = float(stats.t.ppf(0.975, n - 1)) * sem
    return {
        'per_photo': per_photo,
        'mean': mean,
        'std': std,
        'sem': sem,
        'ci95': (mean - half, mean + half),
        'better': int((per_photo > 0).sum()),
        'worse': int((per_photo < 0).sum()),
        'photos_needed': math.ceil((2 * std / resolve) ** 2),
    }


def photo_scores(spec, args, pairs):
    """``{'psnr': (S, P), 'ssim': (S, P)}`` of every saved seed of ``LABEL=WORK:VARIANT`` on ``pairs``."""
    work, variant = spec.split('=', 1)[1].rsplit(':', 1)
    nets = proof.saved_networks(work, variant)
    if not nets:
        raise SystemExit(f'{spec}: no saved {variant!r} network in {work}')
    gts = [tensor2img(gt) for _, _, gt in pairs]  # BGR, as the proof scores them
    psnr, ssim = [], []
    for job, weights in nets:
        outputs = [o[..., ::-1] for o in proof.network_outputs(job, weights, args, pairs)]  # RGB -> BGR
        psnr.append([calculate_psnr_llie(o, g) for o, g in zip(outputs, gts)])
        ssim.append([calculate_ssim_llie(o, g) for o, g in zip(outputs, gts)])
        print(f'{spec} seed {job["seed"]}: PSNR {np.mean(psnr[-1]):.2f} dB, SSIM {np.mean(ssim[-1]):.3f}', flush=True)
    return {'psnr': np.array(psnr), 'ssim': np.array(ssim)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('first', metavar='LABEL=WORK:VARIANT')
    parser.add_argument('second', metavar='LABEL=WORK:VARIANT')
    proof.add_saved_network_arguments(parser)
    parser.add_argument('--resolve', type=float, default=0.5, help='PSNR difference to resolve (dB)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = proof.test_pairs(args.root)
    a, b = photo_scores(args.first, args, pairs), photo_scores(args.second, args, pairs)
    label = f'{args.first.split("=", 1)[0]} - {args.second.split("=", 1)[0]}'
    res = photo_difference_stats(a['psnr'], b['psnr'], args.resolve)
    names = [name for name, _, _ in pairs]
    print(f'\nper-photo PSNR difference {label} (dB, mean over seeds), {len(names)} photos ({args.root}):')
    for name, d in zip(names, res['per_photo']):
        print(f'  {d:+6.2f}  {name}')
    lo, hi = res['ci95']
    print(f'mean {res["mean"]:+.2f} dB; std over photos {res["std"]:.2f}; standard error {res["sem"]:.2f}; ', end='')
    print(f'95 % interval {lo:+.2f} to {hi:+.2f}; {res["better"]} photos better, {res["worse"]} worse')
    print(f'photos needed to resolve {args.resolve} dB at 2 standard errors: {res["photos_needed"]}')
    s = photo_difference_stats(a['ssim'], b['ssim'])
    print(f'SSIM: mean {s["mean"]:+.4f}; standard error {s["sem"]:.4f}; 95 % interval {s["ci95"][0]:+.4f} to ', end='')
    print(f'{s["ci95"][1]:+.4f}; {s["better"]} photos better, {s["worse"]} worse')


if __name__ == '__main__':
    main()
