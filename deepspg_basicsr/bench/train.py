"""Section ``train``: a training iteration step by step, and whole iterations per loss configuration in
the same rounds. Demo data, random weights, Adam; :func:`train_breakdown`. Block ``train``.
"""

import statistics
import time
from contextlib import nullcontext

import torch

from .common import LOSS_NAMES, PERF, SEG_PRIORS, build, devices, iteration, model_options, training_loader
from .core import rounds, sync

#: Loss configurations compared: name -> (extra option sections, losses on).
LOSS_CONFIGS = {
    'pixel + edge': ({}, ('pixel', 'edge')),
    'pixel + edge + semantic': ({}, ('pixel', 'edge', 'semantic')),
    'pixel + edge + CLIP': ({}, ('pixel', 'edge', 'clip')),
    'pixel + edge, no SEM': ({'network_g': {'use_semantics': False}}, ('pixel', 'edge')),
    'pixel + edge + semantic, no SEM': ({'network_g': {'use_semantics': False}}, ('pixel', 'edge', 'semantic')),
    'all four losses': ({}, LOSS_NAMES),
    'all four losses, `perf` (bf16 + channels_last)': ({'perf': PERF}, LOSS_NAMES),
}


def train_breakdown(model, batches, repeats):
    """Seconds of each step of ``DeepSPGModel.optimize_parameters``, in its order, for ``repeats``
    iterations on ``batches`` after one warm-up: step -> list."""
    times, inner, dev = {}, {}, model.device
    c2f = '  of which: C2F prior on the coarse result'

    def timed(name, fn, *args, into=times, **kwargs):
        sync(dev)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(dev)
        into.setdefault(name, []).append(time.perf_counter() - start)
        return out

    for _ in range(repeats + 1):
        model.feed_data(timed('data loading (batch from the DataLoader, 0 workers)', next, batches))
        model.optimizer_g.zero_grad(set_to_none=True)
        feats = timed('prior on the input (no_grad)', model.sem_features, model.lq)
        prior = lambda img: timed(c2f, model.c2f_features, img, into=inner)  # noqa: E731
        output = timed('enhancer forward (incl. C2F prior)', model._run_net, model.net_g, model.lq, feats, prior=prior)
        times.setdefault(c2f, []).append(sum(inner.pop(c2f, [])))
        losses, gt = {}, model.gt
        with model.autocast():
            if model.cri_pix is not None:
                losses['l_pix'] = timed('l_pix forward', model.cri_pix, output, gt)
            if model.cri_edge is not None:
                losses['l_edge'] = timed('l_edge forward', model.cri_edge, output, gt)
            if model.cri_sem is not None:
                out_logits = timed('l_sem: prior on the output (with grad)', model.seg_prior, output)['logits']
                with torch.no_grad():
                    gt_logits = timed('l_sem: prior on the ground truth (no_grad)', model.seg_prior, gt)['logits']
                losses['l_sem'] = timed('l_sem: KL', model.cri_sem, out_logits, gt_logits)
        if model.cri_clip is not None:  # as DeepSPGModel.compute_losses: autocast on CUDA only
            with model.autocast() if dev.type == 'cuda' else nullcontext():
                feat = timed('l_clip: CLIP image encoder forward', model.clip_prior.encode_image, output)
            text = model.clip_prior.text_features
            losses['l_clip'] = timed('l_clip: cosine to the cached text features', model.cri_clip, feat, text)
        grad = torch.zeros_like(output)
        for name, loss in losses.items():
            step = f'{name} backward to the output'
            grad += timed(step, torch.autograd.grad, loss.float(), output, retain_graph=True)[0]
        timed('enhancer backward', output.backward, grad)
        timed('optimizer step', model.optimizer_g.step)
    return {k: v[1:] for k, v in times.items()}


def add_arguments(parser):
    parser.add_argument('--lol', action='store_true', help='also the LOL-v1 settings (HRNet-W48 + ViT-B-16)')
    parser.add_argument('--seg', default='HRNet-W18-small', choices=sorted(SEG_PRIORS), help='prior of the demo rows')
    parser.add_argument('--gt-size', type=int, default=64, help='crop size of the demo rows (default 64)')


def run(rep, args):
    settings = [('demo', args.seg, 'DeepSPG-CLIP-tiny', args.gt_size, 4, 'batch 4 (as the demo)')]
    if args.quick:
        settings = [('demo (quick: 32x32 crops, batch 2)', 'HRNet-W18-small', 'DeepSPG-CLIP-tiny', 32, 2, 'batch 2')]
    elif args.lol:
        settings.append(('LOL-v1', 'HRNet-W48', 'ViT-B-16', 128, 2, ''))
    rep.block('train')
    for device in devices():
        for name, seg, clip, gt_size, batch, note in settings:
            if name == 'LOL-v1':  # batch 16 as the LOL-v1 options on CUDA, 2 on the CPU
                batch, note = (16, 'batch 16') if device.type == 'cuda' else (2, 'batch 2 (reduced from 16 on CPU)')
            rep.note(f'**{name} settings, {device.type}**: {seg} + {clip}, {gt_size}x{gt_size} crops, {note}.')
            batches = training_loader(gt_size, batch)
            full = build(model_options(seg, clip, is_train=True), device)
            parts = train_breakdown(full, batches, args.repeats)
            meds = {k: statistics.median(v) for k, v in parts.items()}
            total = sum(v for k, v in meds.items() if not k.startswith(' '))
            rows = [[k, f'{v:.3f}', f'{v / total:.0%}'] for k, v in meds.items()]
            rows.append(['**sum of the steps**', f'{total:.3f}', '100%'])
            rep.table(['step', 'median (s)', 'share'], rows)
            models = {}
            for key, (extra, losses) in LOSS_CONFIGS.items():
                models[key] = build(model_options(seg, clip, is_train=True, losses=losses, extra=extra), device)
                no_sem = extra.get('network_g', {}).get('use_semantics') is False  # no SEM: its keys are extra
                models[key].net_g.load_state_dict(full.net_g.state_dict(), strict=not no_sem)
            del full
            t = rounds({k: iteration(m, batches) for k, m in models.items()}, args.repeats, device=device)
            rep.timings(['whole iteration', 'latency', 'vs pixel + edge (per round)'], t, 'pixel + edge')
            ratios = {k: t.ratio(k, 'pixel + edge') for k in t}
            rep.data.setdefault(name, {})[device.type] = {'steps': parts, 'iterations': dict(t), 'ratios': ratios}
            del models
