"""Does the SEM pathway carry what the prior knows into the output? Oracle / control ablation.

Four DeepSPG networks are trained with the same seed, the same batches and the same budget on the
demo data (``datasets/make_demo_data.py``), differing only in where the SEM features come from
(``prior.source``, see :class:`~deepspg_basicsr.models.deepspg_model.DeepSPGModel`):

* ``no semantics``: ``network_g.use_semantics: false`` (no SEM at all);
* ``input``: the prior on the low-light input (the default, deployable setting);
* ``gt (oracle)``: the prior on the ground truth: features of a prior that *knows the answer*;
* ``shuffled (control)``: the prior on the ground truth of another image of the batch: the
  same kind of features, carrying nothing about this image.

Each network is then evaluated on the demo test images (whole images) with features from its own
source (the oracle: the test image's ground truth; the control: the ground truth of the next test
image) and, in a second column, with the deployable features (the prior on the input). If SEM
transports information, the oracle must beat the network without semantics by a wide margin and
the control must not.

The prior is HRNet-W18-small with **random weights** (nothing is downloaded), as the demo: a
random convolutional network still encodes its input, so the oracle's features hold the answer.
Settings are the demo's (``options/train_DeepSPG_demo.yml``: base width, 64x64 crops, batch 4,
Adam 1e-3, cosine schedule) except the budget (``--iters``) and the losses (pixel + edge by
default; ``--all-losses`` adds the semantic KL and CLIP losses of the demo, with random priors).

Section ``proof`` of ``deepspg-bench`` (block ``proof``); ``scripts/semantic_proof.py`` calls :func:`main`.
Usage::

    deepspg-bench proof                                   # 200 iterations each (the demo's budget)
    deepspg-bench proof --iters 60 --json /tmp/proof.json
"""

import copy
import json
import os
import platform
import random
import sys
import time

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr.metrics.llie_psnr_ssim import calculate_psnr_llie

import numpy as np
import torch
import yaml
from basicsr.utils import tensor2img

from .common import DEMO_ROOT, ROOT, build, ensure_demo_data, training_loader

DEMO_OPT = os.path.join(ROOT, 'options', 'train_DeepSPG_demo.yml')
#: Variant -> (option sections merged into the demo's, source of the SEM features at evaluation).
VARIANTS = {
    'no semantics': ({'network_g': {'use_semantics': False}}, 'none'),
    'input (default)': ({}, 'input'),
    'gt (oracle)': ({'prior': {'source': 'gt'}}, 'gt'),
    'shuffled (control)': ({'prior': {'source': 'shuffled'}}, 'shuffled'),
}


def proof_options(iters, all_losses=False, extra=None, network=None):
    """The demo's training options for ``iters`` iterations, as a dict ready for ``build_model``.

    Args:
        iters (int): Training iterations (also the cosine schedule's period).
        all_losses (bool): Keep the demo's semantic KL and CLIP losses (else pixel + edge).
        extra (dict | None): Sections merged one level deep (``network_g``, ``prior``, ``train``).
        network (dict | None): ``network_g`` entries overriding the demo's (e.g. a smaller width).
    """
    with open(DEMO_OPT) as f:
        opt = yaml.safe_load(f)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=0, path={})
    opt['network_g'].update(network or {})
    train = opt['train']
    train['total_iter'] = iters
    train['scheduler'] = dict(train['scheduler'], periods=[iters])
    if not all_losses:
        train.pop('semantic_opt', None)
        train.pop('clip_opt', None)
    for section, values in copy.deepcopy(extra or {}).items():
        opt.setdefault(section, {}).update(values)
    return opt


def training_batches(root, iters, gt_size, batch, seed):
    """The ``iters`` training batches every variant sees, drawn once (crops, flips, order seeded)."""
    random.seed(seed)
    np.random.seed(seed)
    batches = training_loader(gt_size, batch, root, torch.Generator().manual_seed(seed))
    return [next(batches) for _ in range(iters)]


def test_pairs(root, split='eval15'):
    """The demo pairs of ``split`` (``eval15``: test; ``our485``: training) as (name, lq, gt), each
    a whole image (1, 3, H, W) in [0, 1]."""
    from deepspg_basicsr.data.paired_llie_dataset import PairedLLIEDataset

    dataset = PairedLLIEDataset(
        {
            'name': f'proof_{split}',
            'type': 'PairedLLIEDataset',
            'phase': 'val',
            'dataroot_gt': os.path.join(root, split, 'high'),
            'dataroot_lq': os.path.join(root, split, 'low'),
            'io_backend': {'type': 'disk'},
        }
    )
    items = [dataset[i] for i in range(len(dataset))]
    return [(os.path.basename(d['lq_path']), d['lq'][None], d['gt'][None]) for d in items]


def train(opt, batches, seed):
    """Build a DeepSPGModel (enhancer weights from ``seed``) and train it on ``batches`` as BasicSR's
    loop does. Returns the model and the logged ``l_pix`` of every iteration."""
    model = build(opt, seed=seed)
    warmup = opt['train'].get('warmup_iter', -1)
    l_pix = []
    for it, batch in enumerate(batches, 1):
        model.update_learning_rate(it, warmup_iter=warmup)
        model.feed_data(batch)
        model.optimize_parameters(it)
        l_pix.append(model.get_current_log()['l_pix'])
    return model, l_pix


def evaluate(model, pairs, source):
    """Mean PSNR (dB, the project's metric on uint8 images) of ``model`` on ``pairs`` with the SEM
    features of ``source``: ``input`` / ``none`` (the model's own path, as ``test`` runs it, C2F
    included), ``gt`` (each image's ground truth), ``shuffled`` (the next image's ground truth)."""
    net = model.net_g
    was_training = net.training
    net.eval()
    values = []
    with torch.inference_mode():
        for i, (_, lq, gt) in enumerate(pairs):
            if source in ('input', 'none'):
                out = model.enhance(net, lq)
            else:
                other = gt if source == 'gt' else pairs[(i + 1) % len(pairs)][2]
                out = model.enhance(net, lq, sem_feats=model.sem_features(other), c2f=False)
            values.append(calculate_psnr_llie(tensor2img(out.clamp(0, 1)), tensor2img(gt)))
    net.train(was_training)
    return float(np.mean(values))


def run_proof(root=DEMO_ROOT, iters=200, seed=0, all_losses=False, network=None, variants=None, log=print):
    """Train and evaluate the variants.

    Args:
        root (str): Demo data root (``.../LOL-v1``, holding ``our485`` and ``eval15``).
        iters (int): Training iterations per variant.
        seed (int): Seed of the enhancer weights and of the batches (the same for every variant).
        all_losses (bool): See :func:`proof_options`.
        network (dict | None): ``network_g`` overrides (see :func:`proof_options`).
        variants (list[str] | None): Keys of :data:`VARIANTS` (default: all).
        log (callable): Progress lines.

    Returns:
        dict: variant -> ``psnr_own`` (test images, evaluated with its own source), ``psnr_input``
        (test images, the prior on the input; None for ``no semantics``), ``psnr_train_own`` (the
        training images, whole, own source), ``l_pix_end`` (mean logged ``l_pix`` of the last 10 %
        of iterations), ``seconds``; and ``input_psnr`` (the test inputs themselves).
    """
    base = proof_options(iters, all_losses, network=network)
    data = base['datasets']['train']
    batches = training_batches(root, iters, data['gt_size'], data['batch_size_per_gpu'], seed)
    pairs, train_pairs = test_pairs(root), test_pairs(root, 'our485')
    results = {
        'input_psnr': float(np.mean([calculate_psnr_llie(tensor2img(lq), tensor2img(gt)) for _, lq, gt in pairs]))
    }
    tail = max(1, iters // 10)
    for name in variants or VARIANTS:
        extra, source = VARIANTS[name]
        start = time.perf_counter()
        model, l_pix = train(proof_options(iters, all_losses, extra, network), batches, seed)
        row = {
            'psnr_own': evaluate(model, pairs, source),
            'psnr_input': None if source == 'none' else evaluate(model, pairs, 'input'),
            'psnr_train_own': evaluate(model, train_pairs, source),
            'l_pix_end': float(np.mean(l_pix[-tail:])),
            'seconds': time.perf_counter() - start,
        }
        results[name] = row
        log(f'[{name}: {json.dumps(row)}]')
        del model
    return results


def report(rep, results, args):
    none = results['no semantics']['psnr_own'] if 'no semantics' in results else None
    rows = []
    for name in VARIANTS:
        if name not in results:
            continue
        r = results[name]
        delta = '' if none is None or name == 'no semantics' else f'{r["psnr_own"] - none:+.2f}'
        own = f'{r["psnr_own"]:.2f}'
        on_input = '' if r['psnr_input'] is None else f'{r["psnr_input"]:.2f}'
        train_own = f'{r["psnr_train_own"]:.2f}'
        if none is not None and name != 'no semantics':
            train_own += f' ({r["psnr_train_own"] - results["no semantics"]["psnr_train_own"]:+.2f})'
        rows.append([name, own, delta, on_input, train_own, f'{r["l_pix_end"]:.5f}', f'{r["seconds"]:.0f}'])
    rep(
        f'- command: `{args.command}`; machine: {platform.machine()}, {os.cpu_count()} logical cores, '
        f'torch {torch.__version__}, {torch.get_num_threads()} thread(s); demo data, seed {args.seed}, '
        f'{args.iters} iterations per variant, {"all four losses" if args.all_losses else "pixel + edge losses"}; '
        f'SEM {"as published (channel attention only)" if args.published_sem else "with its spatial path"}; '
        f'prior HRNet-W18-small with RANDOM weights; the test inputs themselves: {results["input_psnr"]:.2f} dB'
    )
    rep()
    rep.table(
        [
            'variant (`prior.source`)',
            'test PSNR, own features (dB)',
            'vs no semantics',
            'test PSNR, features of the input (dB)',
            'training images PSNR, own features (dB, vs no semantics)',
            'train l_pix, last 10 %',
            'time (s)',
        ],
        rows,
    )


def add_arguments(parser):
    parser.add_argument('--iters', type=int, default=200, help='training iterations per variant (default 200)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-feat', type=int, help='network_g.num_feat and illum_feat (default: the demo, 16)')
    parser.add_argument('--all-losses', action='store_true', help="keep the demo's semantic KL and CLIP losses")
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), help='only these variants')
    parser.add_argument(
        '--published-sem', action='store_true', help='SEM as published: channel attention only (sem_spatial: false)'
    )
    parser.add_argument('--root', default=DEMO_ROOT, help='demo data root (default datasets/demo/LOL-v1)')


def run(rep, args):
    """The ``proof`` section (``--quick``: 10 iterations, width 8, no semantics against the oracle)."""
    if args.quick:
        args.iters, args.num_feat = min(args.iters, 10), args.num_feat or 8
        args.variants = args.variants or ['no semantics', 'gt (oracle)']
    ensure_demo_data(args.root)
    args.command = rep.command
    network = {'sem_spatial': False} if args.published_sem else {}
    if args.num_feat:
        network.update(num_feat=args.num_feat, illum_feat=args.num_feat)
    results = run_proof(args.root, args.iters, args.seed, args.all_losses, network, args.variants)
    rep.block('proof-published-sem' if args.published_sem else 'proof')
    report(rep, results, args)
    rep.data['results'] = results


def main(argv=None):
    """``python scripts/semantic_proof.py ...``: the ``proof`` section with 1 thread by default."""
    from .cli import run_section

    argv = list(sys.argv[1:] if argv is None else argv)
    if '--threads' not in argv:
        argv += ['--threads', '1']
    run_section('proof', argv)
