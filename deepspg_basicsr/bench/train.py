"""Section ``train``: a training iteration step by step, and whole iterations per loss configuration in
the same rounds. Demo data, random weights, Adam; :func:`~.common.train_breakdown`. Block ``train``.
"""

import statistics

from .common import (
    LOSS_NAMES,
    PERF,
    SEG_PRIORS,
    build,
    devices,
    iteration,
    model_options,
    train_breakdown,
    training_loader,
)
from .core import rounds

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
