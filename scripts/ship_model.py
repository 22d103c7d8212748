"""Write the shipped enhancer's weights file from a network the proof trained and saved.

    python scripts/ship_model.py results/photos_1000/input__default_seed0.json \
        --options options/train_DeepSPG_ESPNetv2_photos.yml \
        --out deepspg_basicsr/weights/files/deepspg_espnetv2_photos.pth

The proof job's JSON (``deepspg-bench proof ... --work DIR``) sits beside its ``.pth``; the option
file gives ``network_g`` and ``prior`` (the prior by its known name). The file written is
self-describing (``deepspg-weights/1``, :func:`deepspg_basicsr.inference.save_weights`), with an
``info`` record of what it was trained on; its sha256 is printed for the known-weights table.
"""

import argparse
import json
import os
import sys

import torch
import yaml


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('job', help="a proof job's JSON file (its .pth beside it)")
    parser.add_argument('--options', required=True, help='the recipe option file (network_g, prior)')
    parser.add_argument('--out', required=True, help='the weights file to write')
    parser.add_argument('--name', default='deepspg-espnetv2-photos', help='the known-weights name it ships under')
    args = parser.parse_args(argv)

    import deepspg_basicsr  # noqa: F401  (registration)
    from deepspg_basicsr.inference import save_weights
    from deepspg_basicsr.weights.download import file_sha256

    with open(args.job) as f:
        job = json.load(f)
    with open(args.options) as f:
        opt = yaml.safe_load(f)
    weights = args.job[: -len('.json')] + '.pth'
    params = torch.load(weights, weights_only=True)['params']
    prior = {k: opt['prior'][k] for k in ('seg_config', 'seg_checkpoint', 'seg_branches')}
    info = {
        'name': args.name,
        'trained_on': 'the training photos of datasets/make_photo_pairs.py (Debian wallpaper photographs), '
        'each crop darkened afresh at every draw (SPGDarkenedPhotoDataset)',
        'recipe': os.path.basename(args.options),
        'command': job.get('command'),
        'seed': job.get('seed'),
        'iterations': int(round(job['seconds'] / job['s_per_iter'])),
        'unseen_photos': job.get('test'),
        'model_card': 'docs/MODEL.md',
    }
    save_weights(args.out, params, opt['network_g'], prior=prior, info=info)
    print(f'{args.out}: {os.path.getsize(args.out)} bytes, sha256 {file_sha256(args.out)}')


if __name__ == '__main__':
    sys.exit(main())
