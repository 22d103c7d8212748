"""Does SEM turn what a segmentation prior knows into better enhancement of unseen photos?

DeepSPG networks are trained with the same seed, batches and budget, differing only in where the SEM
features come from (``prior.source``) or in one switch (:data:`VARIANTS`); Retinexformer's LOL-v1 network
(``--retinexformer FILE``, its own arch file, never part of this project) is trained the same way. Each is
evaluated on whole *unseen* test photos with features from its own source (PSNR / SSIM / GT-mean PSNR),
the input-prior networks also with the inference levers. Each (variant, seed) is one job whose result is a
JSON file in ``--work``: jobs already there are not rerun, and ``--shard i/n`` splits the jobs between
processes. Priors (``--prior``): entries of :data:`deepspg_basicsr.weights.KNOWN_WEIGHTS`, or ``demo`` (the
random-prior demo's). Section ``proof`` of ``deepspg-bench``; ``scripts/semantic_proof.py`` runs it with one
thread by default; ``--quick``: the demo data and prior, 10 iterations (a check that the machinery runs).
The method, the commands and the results: docs/DEEPSPG.md.
"""

import copy
import glob
import inspect
import json
import os
import random
import sys
import time

import numpy as np
import torch
import yaml
from basicsr.utils import tensor2img

from ..metrics.llie_psnr_ssim import calculate_psnr_llie, calculate_ssim_llie
from ..models.llie_base_model import NonFiniteLossError
from ..utils.checkpoint import atomic_torch_save, load_state_dict_strict
from ..weights import KNOWN_WEIGHTS
from .common import DEMO_ROOT, PEER_OPTIONS, ROOT, build, ensure_demo_data, load_peer, paired_dataset, training_loader
from .core import write_json
from .proof_analysis import analyse
from .proof_timing import report_timing, time_iterations

#: The proof's base options: the demo with random priors (the ``demo`` preset as it is).
DEMO_OPT = os.path.join(ROOT, 'options', 'train_DeepSPG_random_prior_demo.yml')
PHOTO_ROOT = os.path.join(ROOT, 'datasets', 'photos', 'LOL-v1')
#: Prior presets: ``demo`` (the demo's random prior as it is) and known weights names.
PRIORS = ('demo', 'espnetv2-pascal', 'espnetv2-city')
KL = {'semantic_opt': {'type': 'SemanticKLLoss', 'loss_weight': 0.01, 'temperature': 1.0}}
#: Variant -> (option sections merged into the proof's, source of the SEM features at evaluation).
VARIANTS = {
    'no semantics': ({'network_g': {'use_semantics': False}}, 'none'),
    'input (default)': ({}, 'input'),
    'gt (oracle)': ({'prior': {'source': 'gt'}}, 'gt'),
    'shuffled (control)': ({'prior': {'source': 'shuffled'}}, 'shuffled'),
    'published SEM, input': ({'network_g': {'sem_spatial': False}}, 'input'),
    'input + semantic KL': ({'train': KL}, 'input'),
    'no semantics + semantic KL': ({'network_g': {'use_semantics': False}, 'train': KL}, 'none'),
}
MAIN_VARIANTS = list(VARIANTS)[:5]
PEER = 'Retinexformer (peer)'
PEER_ARCH = 'DeepSPGProofPeerRetinexFormer'


def register_peer(path):
    """Register Retinexformer's network class, read from its own file ``path`` (:func:`~.common.load_peer`),
    as an arch of this module (:data:`PEER_ARCH`) that pads its input to a multiple of 8 (reflect) and
    crops back. Its weights are drawn from the RNG the model builder seeded."""
    from basicsr.utils.registry import ARCH_REGISTRY

    if PEER_ARCH in ARCH_REGISTRY:
        return

    class Padded(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            self.net = load_peer(path, options=kwargs, seed=int(torch.randint(2**31, ())))

        def forward(self, x):
            h, w = x.shape[-2:]
            x = torch.nn.functional.pad(x, (0, (-w) % 8, 0, (-h) % 8), mode='reflect')
            return self.net(x)[..., :h, :w]

    ARCH_REGISTRY._do_register(PEER_ARCH, Padded)


#: Inference levers evaluated on the input-prior networks: name -> (``prior`` options set for the
#: evaluation, C2F pass on).
LEVERS = {'prior at 0.5x': ({'seg_scale': 0.5}, True), 'no C2F pass': ({}, False)}


def proof_options(iters, extra=None, network=None, prior='demo', seg_checkpoint=None, data=None):
    """The demo's training options for ``iters`` iterations (pixel + edge losses), ready for ``build_model``.

    Args:
        iters (int): Training iterations (also the cosine schedule's period).
        extra (dict | None): Sections merged one level deep (``network_g``, ``prior``, ``train``).
        network (dict | None): ``network_g`` entries overriding the demo's (e.g. a smaller width).
        prior (str): A key of :data:`PRIORS`.
        seg_checkpoint (str | None): The prior's checkpoint (default: the preset's known weights).
        data (dict | None): ``datasets.train`` entries (``gt_size``, ``batch_size_per_gpu``).
    """
    with open(DEMO_OPT) as f:
        opt = yaml.safe_load(f)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=0, path={})
    opt['train'].pop('semantic_opt', None)
    opt['train'].pop('clip_opt', None)
    if prior != 'demo':
        fragment = KNOWN_WEIGHTS[prior].option_fragment()
        opt = merge_sections(opt, merge_sections(fragment, {'prior': {'seg_checkpoint': seg_checkpoint or prior}}))
    opt = merge_sections(merge_sections(opt, {'network_g': network or {}}), extra)
    # the iterations, crop and batch are the proof's, whatever the merged sections say
    opt['datasets']['train'].update(data or {})
    train = opt['train']
    train['total_iter'] = iters
    train['scheduler'] = dict(train['scheduler'], periods=[iters])
    return opt


def training_batches(root, gt_size, batch, seed, dataset=None):
    """Endless training batches, the same sequence for a given seed whatever the training does in
    between: the crops, flips (and fresh darkenings) draw from their own saved ``random`` / NumPy
    states. ``dataset``: a ``datasets.train`` option dict of another type than the pairs (e.g.
    ``SPGDarkenedPhotoDataset``), read from ``root/our485/high``."""
    if dataset is not None and dataset.get('type', 'PairedLLIEDataset') != 'PairedLLIEDataset':
        from basicsr.data import build_dataset

        dataset = build_dataset(
            dict(dataset, phase='train', dataroot_gt=os.path.join(root, 'our485', 'high'), gt_size=gt_size)
        )
    else:
        dataset = None
    loader = training_loader(gt_size, batch, root, torch.Generator().manual_seed(seed), dataset)
    state = (random.Random(seed).getstate(), np.random.RandomState(seed).get_state())
    while True:
        outer = (random.getstate(), np.random.get_state())
        random.setstate(state[0])
        np.random.set_state(state[1])
        item = next(loader)
        state = (random.getstate(), np.random.get_state())
        random.setstate(outer[0])
        np.random.set_state(outer[1])
        yield item


def validation_root(root, count, dest):
    """A data root under ``dest`` whose ``eval15`` holds out ``count`` of ``root``'s training photos (every
    ``len / count``-th in name order, no seed) and whose ``our485`` keeps the others, both links to ``root``'s
    files (``--val``: settings are chosen there, the unseen photos reported once)."""
    names = sorted(os.listdir(os.path.join(root, 'our485', 'low')))
    if not 0 < count < len(names):
        raise SystemExit(f'--val {count}: needs 0 < count < {len(names)} (the training photos under {root})')
    step = len(names) / count
    held = {names[int(i * step)] for i in range(count)}
    for split, chosen in (('our485', [n for n in names if n not in held]), ('eval15', sorted(held))):
        for side in ('low', 'high'):
            folder = os.path.join(dest, split, side)
            os.makedirs(folder, exist_ok=True)
            for name in chosen:
                link = os.path.join(folder, name)
                if not os.path.lexists(link):
                    os.symlink(os.path.abspath(os.path.join(root, 'our485', side, name)), link)
    return dest


def test_pairs(root, split='eval15', limit=None):
    """The pairs of ``split`` (``eval15``: unseen test photos; ``our485``: training) as (name, lq, gt),
    each a whole image (1, 3, H, W) in [0, 1]; the first ``limit`` only, if given."""
    dataset = paired_dataset(root, split)
    items = [dataset[i] for i in range(min(len(dataset), limit or len(dataset)))]
    return [(os.path.basename(d['lq_path']), d['lq'][None], d['gt'][None]) for d in items]


def train(opt, batches, seed):
    """Build a DeepSPGModel (enhancer weights from ``seed``) and train it on ``batches`` as BasicSR's
    loop does. Returns the model, the logged ``l_pix`` of every iteration and the seconds taken."""
    model = build(opt, seed=seed)
    warmup = opt['train'].get('warmup_iter', -1)
    l_pix = []
    start = time.perf_counter()
    for it in range(1, opt['train']['total_iter'] + 1):
        model.update_learning_rate(it, warmup_iter=warmup)
        model.feed_data(next(batches))
        model.optimize_parameters(it)
        l_pix.append(model.get_current_log()['l_pix'])
    return model, l_pix, time.perf_counter() - start


def evaluate(model, pairs, source, prior_opt=None, c2f=True, outputs=None):
    """Mean PSNR, SSIM and GT-mean PSNR (the project's metrics on uint8 images) of ``model`` on ``pairs``
    with the SEM features of ``source``: ``input`` / ``none`` (the model's own path, as ``test`` runs it;
    ``c2f``: the coarse-to-fine pass allowed), ``gt`` (each image's ground truth), ``shuffled`` (the next
    image's). ``prior_opt``: ``prior`` options for this evaluation only (e.g. ``{'seg_scale': 0.5}``);
    ``outputs``: a list each output is appended to (uint8 RGB, (H, W, 3))."""
    net = model.net_g
    was_training = net.training
    net.eval()
    saved = copy.deepcopy(model.opt.get('prior'))
    model.opt['prior'] = dict(saved or {}, **(prior_opt or {}))
    values = []
    try:
        with torch.inference_mode():
            for i, (_, lq, gt) in enumerate(pairs):
                if source in ('input', 'none'):
                    out = model.enhance(net, lq, c2f=c2f)
                else:
                    other = gt if source == 'gt' else pairs[(i + 1) % len(pairs)][2]
                    out = model.enhance(net, lq, sem_feats=model.sem_features(other), c2f=False)
                a, b = tensor2img(out.clamp(0, 1)), tensor2img(gt)
                if outputs is not None:
                    outputs.append(a[..., ::-1])
                values.append(
                    (calculate_psnr_llie(a, b), calculate_ssim_llie(a, b), calculate_psnr_llie(a, b, gt_mean=True))
                )
    finally:
        model.opt['prior'] = saved
        net.train(was_training)
    psnr, ssim, psnr_gt_mean = np.mean(values, axis=0)
    return {'psnr': float(psnr), 'ssim': float(ssim), 'psnr_gt_mean': float(psnr_gt_mean)}


def tiled_features(features, x, tile):
    """SEM features of ``x`` with the prior run on ``tile`` x ``tile`` pieces, as it sees training crops
    (the image reflect-padded to a multiple of ``tile``, each level's pieces stitched, cropped back to
    ``ceil(size / stride)``). ``features(piece)``: the prior's feature list of one piece; ``tile`` a
    multiple of the prior's largest stride."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (0, (-w) % tile, 0, (-h) % tile), mode='reflect')
    rows = []
    for y in range(0, padded.shape[-2], tile):
        pieces = [features(padded[..., y : y + tile, x0 : x0 + tile]) for x0 in range(0, padded.shape[-1], tile)]
        rows.append([torch.cat(level, -1) for level in zip(*pieces)])
    out = []
    for level in zip(*rows):
        f = torch.cat(level, -2)
        stride = tile // level[0].shape[-2]
        out.append(f[..., : -(-h // stride), : -(-w // stride)])
    return out


def evaluate_tiled_prior(model, pairs, tile):
    """:func:`evaluate` (source ``input``, C2F on) with every prior pass run on ``tile``-sized pieces."""
    whole = model.sem_features
    model.sem_features = lambda x, scale=None: tiled_features(lambda t: whole(t, 1.0), x, tile)
    try:
        return evaluate(model, pairs, 'input')
    finally:
        del model.sem_features


def merge_sections(base, extra):
    """``base`` with ``extra``'s sections merged one level deep (new dicts; neither argument changes)."""
    out = copy.deepcopy(base or {})
    for section, values in (extra or {}).items():
        out[section] = dict(out.get(section) or {}, **copy.deepcopy(values))
    return out


def job_options(name, iters, options=None, **kw):
    """The options of variant ``name``'s job and the source of its SEM features at evaluation: ``options``
    (``--options``) merged before the variant's own switch (the peer takes their ``train`` and ``datasets``
    sections only, and its own network); ``kw``: :func:`proof_options`' other keywords."""
    sections = ('train', 'datasets') if name == PEER else ('network_g', 'prior', 'train', 'datasets')
    options = {k: v for k, v in (options or {}).items() if k in sections}  # a whole option file may be given
    extra, source = VARIANTS[name] if name != PEER else ({}, 'none')
    opt = proof_options(iters, extra=merge_sections(options, extra), **kw)
    if name == PEER:
        opt['network_g'] = dict(PEER_OPTIONS, type=PEER_ARCH)
    return opt, source


def resolved_network(net_opt):
    """``net_opt`` (a ``network_g`` section, with ``type``) completed with every constructor default of its
    registered class that it leaves out: the network's full options, so that a record of them rebuilds the same
    network whatever the defaults become later. Arguments without a default (``**kwargs``) stay as given, and a
    default JSON cannot hold (an object) is left out: the record never stops a finished job from being written."""
    from basicsr.utils.registry import ARCH_REGISTRY

    out = {}
    for p in inspect.signature(ARCH_REGISTRY.get(net_opt['type']).__init__).parameters.values():
        if p.name != 'self' and p.default is not inspect.Parameter.empty:
            try:
                out[p.name] = json.loads(json.dumps(p.default))  # as a JSON record reads back (tuples: lists)
            except (TypeError, ValueError):
                pass
    out.update(copy.deepcopy(net_opt))
    return out


def run_job(name, seed, root, iters, save=None, levers=True, **options):
    """Train variant ``name`` with ``seed`` (``options``: :func:`job_options`' keywords) and evaluate it, with the
    inference levers unless not ``levers``; its result dict (see :func:`run_proof`). ``save``: also write the
    trained enhancer's weights there (``{'params': state_dict}``)."""
    opt, source = job_options(name, iters, **options)
    train_data = opt['datasets']['train']
    batches = training_batches(root, train_data['gt_size'], train_data['batch_size_per_gpu'], seed, train_data)
    model, l_pix, seconds = train(opt, batches, seed)
    if save:
        atomic_torch_save({'params': model.net_g.state_dict()}, save)
    pairs = test_pairs(root)
    row = {
        'variant': name,
        'seed': seed,
        'test': evaluate(model, pairs, source),
        'train_subset': evaluate(model, test_pairs(root, 'our485', limit=10), source),
        'l_pix_end': float(np.mean(l_pix[-max(1, iters // 10) :])),
        'seconds': seconds,
        's_per_iter': seconds / iters,
        'network': resolved_network(opt['network_g']),
    }
    if source == 'input' and levers:
        row['levers'] = {lever: evaluate(model, pairs, 'input', o, c2f) for lever, (o, c2f) in LEVERS.items()}
    row['psnr_own'], row['psnr_train_own'] = row['test']['psnr'], row['train_subset']['psnr']
    return row


def run_proof(root=DEMO_ROOT, iters=200, seed=0, network=None, variants=None, log=print, **kw):
    """Train and evaluate ``variants`` (default: :data:`MAIN_VARIANTS`) with one seed.

    Returns:
        dict: variant -> the job's dict: ``test`` / ``train_subset`` (``psnr``, ``ssim``,
        ``psnr_gt_mean`` on the unseen photos / the first 10 training photos, own source),
        ``psnr_own`` / ``psnr_train_own`` (their PSNR), ``levers`` (input-prior variants),
        ``l_pix_end`` (mean logged ``l_pix`` of the last 10 % of iterations), ``seconds``,
        ``s_per_iter``, ``network`` (the network's full options, :func:`resolved_network`); and
        ``input_psnr`` (the test inputs themselves).
    """
    results = {'input_psnr': input_psnr(root)}
    for name in variants or MAIN_VARIANTS:
        results[name] = run_job(name, seed, root, iters, network=network, **kw)
        log(f'[{name}: {json.dumps(results[name])}]')
    return results


def input_psnr(root):
    return float(np.mean([calculate_psnr_llie(tensor2img(lq), tensor2img(gt)) for _, lq, gt in test_pairs(root)]))


def _job_path(out, name, seed):
    """The JSON file of job (``name``, ``seed``) in ``out`` (``seed`` ``*``: a glob pattern)."""
    slug = ''.join(c if c.isalnum() else '_' for c in name).strip('_')
    return os.path.join(out, f'{slug}_seed{seed}.json')


def _read_job(path):
    with open(path) as f:
        return json.load(f)


def _mean_std(values):
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _fmt(values, digits=2):
    mean, std = _mean_std(values)
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def _paired(by, name):
    """PSNR differences of ``name``'s jobs to ``no semantics``' of the same seed."""
    base, runs = by.get('no semantics', {}), by.get(name, {})
    return [runs[s]['test']['psnr'] - base[s]['test']['psnr'] for s in runs if s in base]


#: The main table's measures: header, value of one job, digits.
MEASURES = (
    ('unseen PSNR (dB)', lambda r: r['test']['psnr'], 2),
    ('unseen SSIM', lambda r: r['test']['ssim'], 3),
    ('unseen GT-mean PSNR (dB)', lambda r: r['test']['psnr_gt_mean'], 2),
    ('10 training photos PSNR (dB)', lambda r: r['train_subset']['psnr'], 2),
)


def report(rep, rows, args, input_db):
    """Markdown tables (means ± std over seeds) and the targets, from the jobs' dicts."""
    by = {}
    for r in rows:
        by.setdefault(r['variant'], {})[r['seed']] = r
    rep.note(
        f'- data `{os.path.relpath(args.root, ROOT)}` ({len(os.listdir(os.path.join(args.root, "eval15", "low")))} '
        f'unseen test photos, whole images); seeds {sorted({r["seed"] for r in rows})}; {args.iters} iterations, '
        f'{args.gt_size}x{args.gt_size} crops, batch {args.batch}; pixel + edge losses unless named; prior '
        f'`{args.prior}`; the test inputs themselves: {input_db:.2f} dB'
    )
    table = []
    for name in [n for n in [*VARIANTS, PEER] if by.get(n)]:
        vals, paired = list(by[name].values()), _paired(by, name)
        cells = [_fmt([get(r) for r in vals], digits) for _, get, digits in MEASURES]
        delta = _fmt(paired) if paired and name != 'no semantics' else ''
        table.append([name, len(vals), cells[0], delta, *cells[1:], f'{np.mean([r["s_per_iter"] for r in vals]):.2f}'])
    headers = [m[0] for m in MEASURES]
    headers.insert(1, 'vs no semantics (paired by seed)')
    rep.table(['variant', 'seeds', *headers, 's / iteration'], table)
    lever_rows = []
    for name, runs in by.items():
        for lever in sorted({lever for r in runs.values() for lever in r.get('levers', {})}, key=str):
            with_lever = [r for r in runs.values() if lever in r.get('levers', {})]
            vals = [r['levers'][lever] for r in with_lever]
            change = _fmt([v['psnr'] - r['test']['psnr'] for v, r in zip(vals, with_lever)])
            psnr, ssim = _fmt([v['psnr'] for v in vals]), _fmt([v['ssim'] for v in vals], 3)
            lever_rows.append([name, lever, psnr, change, ssim])
    if lever_rows:
        rep.table(['network', 'inference lever', 'unseen PSNR (dB)', 'change (dB)', 'unseen SSIM'], lever_rows)
    for line in targets(by):
        rep(line)


def targets(by):
    """The issue's targets as lines of text (paired differences to ``no semantics`` by seed)."""
    base, lines = by.get('no semantics', {}), []
    d_in, d_or, d_sh = _paired(by, 'input (default)'), _paired(by, 'gt (oracle)'), _paired(by, 'shuffled (control)')
    none_std = _mean_std([r['test']['psnr'] for r in base.values()])[1] if base else float('nan')
    if d_in:
        m, s = _mean_std(d_in)
        ok = m >= 0.5 and m > 2 * max(s, none_std)
        lines.append(
            f'- input prior vs no semantics: {m:+.2f} dB (std of the paired difference {s:.2f}, of no semantics '
            f'{none_std:.2f}); target >= +0.5 dB and > 2 x std: {"MET" if ok else "MISSED"}'
        )
    peer, ours = by.get(PEER, {}).values(), by.get('input (default)', {}).values()
    if peer and ours:
        mean = lambda runs, key: np.mean([r['test'][key] for r in runs])  # noqa: E731
        dp, ds = (mean(ours, k) - mean(peer, k) for k in ('psnr', 'ssim'))
        lines.append(
            f'- input prior vs {PEER}, means over seeds: PSNR {dp:+.2f} dB (target >= +0.3 dB: '
            f'{"MET" if dp >= 0.3 else "MISSED"}), SSIM {ds:+.3f} (target >= 0: {"MET" if ds >= 0 else "MISSED"})'
        )
    if d_or:
        m, _ = _mean_std(d_or)
        lines.append(f'- oracle vs no semantics: {m:+.2f} dB; target >= +1.0 dB: {"MET" if m >= 1.0 else "MISSED"}')
    if d_sh:
        m, s = _mean_std(d_sh)
        ok = m <= 2 * max(s, none_std)
        lines.append(
            f'- shuffled control vs no semantics: {m:+.2f} dB (std {s:.2f}); target: no better within noise: '
            f'{"MET" if ok else "MISSED"}'
        )
    return lines


def saved_networks(work, variant):
    """(job dict, weights path) of every saved job of ``variant`` in ``work``."""
    paths = sorted(glob.glob(_job_path(work, variant, '*')))
    return [(_read_job(p), p[: -len('.json')] + '.pth') for p in paths if os.path.exists(p[: -len('.json')] + '.pth')]


def add_saved_network_arguments(parser):
    """The options that rebuild the proof's saved networks (:func:`network_outputs`), for scripts that reload them:
    the job's budget and crop (the options it was built with), the prior, Retinexformer's arch file, the photos."""
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--gt-size', type=int, default=96)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--prior', default='espnetv2-pascal')
    parser.add_argument('--retinexformer', help="Retinexformer's RetinexFormer_arch.py, for its saved networks")
    parser.add_argument('--root', default='datasets/photos/LOL-v1')
    parser.add_argument('--threads', type=int, default=1)
    parser.set_defaults(seg_checkpoint=None)


def _job_kw(args, options):
    """:func:`job_options`'s keywords from the command line (``options``: the ``--options`` sections)."""
    data = {'gt_size': args.gt_size, 'batch_size_per_gpu': args.batch}
    return dict(options=options, prior=args.prior, seg_checkpoint=args.seg_checkpoint, data=data)


def recorded_options(options, state):
    """A job's recorded ``--options`` sections, completed from its saved ``state`` (a state dict) where the record
    predates an option: a file with an exposure head but without the encoder source's marker buffer was trained
    with ``network_g.exposure_source: decoder`` (jobs recorded before that option existed do not name it)."""
    named = 'exposure_source' in ((options or {}).get('network_g') or {})
    if not named and 'exposure.fc1.weight' in state and 'exposure.from_encoder' not in state:
        return merge_sections(options, {'network_g': {'exposure_source': 'decoder'}})
    return options


def saved_model(name, seed, weights, args, options, network=None):
    """The network of job (``name``, ``seed``) saved at ``weights``, built as :func:`run_job` built it,
    and the source of its SEM features. ``network``: the job's record of its network's full options
    (:func:`resolved_network`; jobs recorded before it have none: then :func:`recorded_options`)."""
    if name == PEER:
        register_peer(args.retinexformer)
    state = torch.load(weights, weights_only=True)['params']
    if network:
        options = merge_sections(options, {'network_g': network})
    else:
        options = recorded_options(options, state)
    opt, source = job_options(name, args.iters, **_job_kw(args, options))
    model = build(opt, seed=seed)
    # strict, and a mismatch names the network_g option the file was trained with
    load_state_dict_strict(model.net_g, state, weights)
    return model, source


def network_outputs(row, weights, args, pairs):
    """The uint8 RGB outputs on ``pairs`` of the network saved at ``weights`` by the job ``row``."""
    model, source = saved_model(row['variant'], row['seed'], weights, args, row.get('options'), row.get('network'))
    outputs = []
    evaluate(model, pairs, source, outputs=outputs)
    return outputs


def run_analysis(rep, args):
    """``--analyse LABEL=WORK:VARIANT ...``: every saved seed of each network on the test photos, into
    :func:`~.proof_analysis.analyse`."""
    pairs = test_pairs(args.root)
    networks = []
    for spec in args.analyse:
        label, rest = spec.split('=', 1)
        work, variant = rest.rsplit(':', 1)
        nets = saved_networks(work, variant)
        if not nets:
            raise SystemExit(f'--analyse {label}: no saved {variant!r} network in {work}')
        networks.append((label, [network_outputs(row, weights, args, pairs) for row, weights in nets]))
    analyse(rep, args, pairs, networks)


def add_arguments(parser):
    parser.add_argument('--root', help='data root holding our485/ and eval15/ (default: datasets/photos/LOL-v1)')
    parser.add_argument('--prior', choices=list(PRIORS), default='espnetv2-pascal')
    parser.add_argument('--seg-checkpoint', help="the prior's checkpoint (default: the preset's packaged file)")
    parser.add_argument('--iters', type=int, default=300, help='training iterations per job (default 300)')
    parser.add_argument('--gt-size', type=int, default=96, help='training crop size (default 96)')
    parser.add_argument('--batch', type=int, default=4, help='batch size (default 4)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--variants', nargs='+', choices=[*VARIANTS, PEER], help='default: all (and the peer)')
    parser.add_argument('--retinexformer', help="Retinexformer's RetinexFormer_arch.py: adds the peer variant")
    parser.add_argument('--work', help="the jobs' files (default: results/semantic_proof/<prior>)")
    parser.add_argument('--shard', default='0/1', help='i/n: run every n-th job starting at i (default 0/1)')
    parser.add_argument('--report-only', action='store_true', help='only aggregate the JSON files in --work')
    parser.add_argument('--options', help='YAML file or inline YAML: sections merged into every variant')
    parser.add_argument('--val', type=int, default=0, help='evaluate on this many held-out training photos')
    parser.add_argument('--no-levers', action='store_true', help='skip the inference levers (faster screening)')
    parser.add_argument('--analyse', nargs='+', metavar='LABEL=WORK:VARIANT', help="the saved networks' errors")
    parser.add_argument('--figure', help='with --analyse: save the crops figure (PNG) here')
    parser.add_argument('--block', default='proof', help="the docs block written (--analyse: 'proof-analysis')")
    parser.add_argument('--tiled-prior', action='store_true', help='the saved networks, prior on crop-sized pieces')
    parser.add_argument(
        '--time-iterations', type=int, default=0, metavar='R', help="time the variants' training iteration, R rounds"
    )


def _run_timing(rep, args, options, chosen):
    """``--time-iterations R``: the chosen variants' training iteration in R interleaved rounds (block
    ``--block``), the peer (if chosen, else the first variant) as the reference."""
    kw = _job_kw(args, options)

    def batches(opt):
        data = opt['datasets']['train']
        return training_batches(args.root, data['gt_size'], data['batch_size_per_gpu'], 0, data)

    t = time_iterations(chosen, args.time_iterations, lambda name: job_options(name, args.iters, **kw)[0], batches)
    rep.block(args.block)
    what = f'{args.gt_size}x{args.gt_size} crops, batch {args.batch}, prior `{args.prior}`'
    report_timing(rep, t, PEER if PEER in chosen else chosen[0], args.iters, what)


def _quick(rep, args):
    """``--quick``: the demo data and prior, 10 iterations, width 8, no semantics against the oracle."""
    root, network = ensure_demo_data(DEMO_ROOT), {'num_feat': 8, 'illum_feat': 8}
    variants = ['no semantics', 'gt (oracle)']
    results = run_proof(root, min(args.iters, 10), args.seeds[0], network=network, variants=variants)
    rep.block('proof-quick')
    rep.note(f'- `{rep.command}`: demo data, random prior, {min(args.iters, 10)} iterations (a check, not a result)')
    runs = {k: v['test'] for k, v in results.items() if k != 'input_psnr'}
    rows = [[k, f'{v["psnr"]:.2f}', f'{v["psnr_gt_mean"]:.2f}'] for k, v in runs.items()]
    rep.table(['variant', 'unseen PSNR (dB)', 'unseen GT-mean PSNR (dB)'], rows)
    rep.data['results'] = results


def run(rep, args):
    """The ``proof`` section: run this process's jobs, then the tables of every job found."""
    if args.quick:
        return _quick(rep, args)
    args.root = args.root or (PHOTO_ROOT if os.path.isdir(PHOTO_ROOT) else DEMO_ROOT)
    if not os.path.isdir(os.path.join(args.root, 'eval15')):
        raise SystemExit(
            f"no pairs under '{args.root}': run python datasets/make_photo_pairs.py (or make_demo_data.py)"
        )
    out = args.work or os.path.join(ROOT, 'results', 'semantic_proof', args.prior)
    os.makedirs(out, exist_ok=True)
    if args.val:
        args.root = validation_root(args.root, args.val, os.path.join(out, f'val{args.val}_data'))
    if args.analyse:
        return run_analysis(rep, args)
    options = None
    if args.options:
        text = args.options
        if os.path.isfile(text):
            with open(text) as f:
                text = f.read()
        options = yaml.safe_load(text)
        if not isinstance(options, dict):
            raise SystemExit(f'--options must be a YAML mapping of sections, got {args.options!r}')
    # the main table's variants first, for every seed; the peer whenever its arch file is given
    chosen = list(args.variants or VARIANTS)
    if args.retinexformer and PEER not in chosen:
        chosen.append(PEER)
    if PEER in chosen:
        if not args.retinexformer:
            raise SystemExit(f'--variants {PEER!r} needs --retinexformer FILE (its RetinexFormer_arch.py)')
        register_peer(args.retinexformer)
    if args.time_iterations:
        return _run_timing(rep, args, options, chosen)
    groups = (MAIN_VARIANTS, [v for v in VARIANTS if v not in MAIN_VARIANTS], [PEER])
    jobs = [(v, s) for group in groups for s in args.seeds for v in chosen if v in group]
    index, count = (int(v) for v in args.shard.split('/'))
    for k, (name, seed) in enumerate(jobs):
        path = _job_path(out, name, seed)
        if args.report_only or args.tiled_prior or k % count != index or os.path.exists(path):
            continue
        weights = path[: -len('.json')] + '.pth'
        try:
            row = run_job(name, seed, args.root, args.iters, weights, not args.no_levers, **_job_kw(args, options))
        except NonFiniteLossError as err:  # diverged or collapsed: one clear line, status 3, no record (reruns)
            remedy = (
                'a proof job reruns from the start: set train.grad_clip_norm or a lower train.optim_g.lr in --options'
            )
            print(f'error: job {name!r} seed {seed} stopped: {type(err).__name__}: {err} ({remedy})', file=sys.stderr)
            raise SystemExit(3) from None
        row.update(command=rep.command, options=options)
        write_json(path, row)
        print(f'[{name} seed {seed}: {json.dumps(row)}]', flush=True)
    lever = f'prior on {args.gt_size}x{args.gt_size} pieces'
    for name, seed in jobs if args.tiled_prior else ():  # the input-prior networks saved, not yet evaluated so
        path = _job_path(out, name, seed)
        weights = path[: -len('.json')] + '.pth'
        if name == PEER or VARIANTS[name][1] != 'input' or not os.path.exists(weights):
            continue
        row = _read_job(path)
        if lever not in row['levers']:
            model, _ = saved_model(name, seed, weights, args, options, row.get('network'))
            row['levers'][lever] = evaluate_tiled_prior(model, test_pairs(args.root), args.gt_size)
            write_json(path, row)
            print(f'[{name} seed {seed}, {lever}: {row["levers"][lever]}]', flush=True)
    rows = [_read_job(_job_path(out, *job)) for job in jobs if os.path.exists(_job_path(out, *job))]
    rep.block(args.block)
    report(rep, rows, args, input_psnr(args.root))
    rep.data['jobs'] = rows


def main(argv=None):
    """``python scripts/semantic_proof.py ...``: the ``proof`` section with 1 thread by default."""
    from .cli import run_section

    argv = list(sys.argv[1:] if argv is None else argv)
    if '--threads' not in argv:
        argv += ['--threads', '1']
    run_section('proof', argv)
