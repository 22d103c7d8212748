"""How much of each network's exposure error on the unseen photos is the photo's, not the network's.

    python scripts/exposure_agreement.py LABEL=WORK:VARIANT [...] --iters 1000 --gt-size 128 \
        --retinexformer RetinexFormer_arch.py

For every saved network of ``deepspg-bench proof`` (the jobs of ``VARIANT`` in ``WORK``, built with the
same ``--iters``, ``--gt-size`` and prior as they were trained), the exposure error of each unseen photo:
``log2(mean(output) / mean(ground truth))`` in stops, over the 8-bit RGB images the proof scores. Prints
each network's errors, their mean and mean magnitude, the correlation of the per-photo errors between
networks, and how the errors split into a part every network shares (the mean over networks, per photo)
and a part of each network's own.
"""

import argparse

from deepspg_basicsr.bench import proof
from deepspg_basicsr.metrics.error_decomposition import decompose_error

import numpy as np
import torch
from basicsr.utils import tensor2img


def exposure_errors(outputs, pairs):
    """Per-photo ``log2(mean(out) / mean(gt))`` of uint8 RGB ``outputs`` against ``pairs``' ground truths
    (``exposure_stops`` of :func:`~deepspg_basicsr.metrics.error_decomposition.decompose_error`, as the proof's
    ``--analyse`` measures it)."""
    return [
        decompose_error(out, tensor2img(gt)[..., ::-1])['exposure_stops'] for out, (_, _, gt) in zip(outputs, pairs)
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('networks', nargs='+', metavar='LABEL=WORK:VARIANT')
    proof.add_saved_network_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = proof.test_pairs(args.root)
    labels, rows = [], []
    for spec in args.networks:
        label, rest = spec.split('=', 1)
        work, variant = rest.rsplit(':', 1)
        nets = proof.saved_networks(work, variant)
        if not nets:
            raise SystemExit(f'{spec}: no saved {variant!r} network in {work}')
        for job, weights in nets:
            errors = exposure_errors(proof.network_outputs(job, weights, args, pairs), pairs)
            labels.append(f'{label} s{job["seed"]}')
            rows.append(errors)
            print(f'{labels[-1]:>24}: mean {np.mean(errors):+.3f}, |mean| {np.mean(np.abs(errors)):.3f} stops;')
            print(' ' * 26 + ' '.join(f'{e:+.2f}' for e in errors), flush=True)
    errors = np.array(rows)
    shared = errors.mean(axis=0)
    corr = np.corrcoef(errors)
    off = corr[~np.eye(len(rows), dtype=bool)]
    print(f'\n{len(rows)} networks, {len(pairs)} photos ({args.root})')
    print(f'correlation of the per-photo errors between networks: {off.min():.2f} to {off.max():.2f}', end='')
    print(f', mean {off.mean():.2f}')
    print(f'shared part (mean over networks per photo): std over photos {shared.std():.3f} stops', end='')
    print(f', mean {shared.mean():+.3f}, from {shared.min():+.2f} to {shared.max():+.2f}')
    print(f"each network's own part (error - shared): std {(errors - shared).std():.3f} stops")


if __name__ == '__main__':
    main()
