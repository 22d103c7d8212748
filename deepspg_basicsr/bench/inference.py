"""Section ``inference``: the speed levers of inference at 600x400 (CPU; CUDA rows when there is one).

Blocks ``inference-latency``, ``inference-levers`` and ``inference-seg-scale`` (docs/BENCHMARKS.md).
**Random weights**; every table's rows timed in the same interleaved rounds, ratios per round.
"""

import copy
import functools
import json
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from .common import CONFIGS, SEG_PRIORS, build, devices, model_options, parse_size, psnr, run_pipeline, test_image
from .core import rounds


def add_arguments(parser):
    parser.add_argument('--seg', default='HRNet-W48', choices=sorted(SEG_PRIORS), help='prior (quick: W18-small)')
    parser.add_argument('--size', default='600x400', help='WxH (quick: 96x64)')


def saved_activation_mib(fn):
    """MiB of the distinct tensors autograd saves for backward while ``fn`` runs."""
    seen = {}

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape))
        seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()) / 2**20


def cosine_and_rel_l2(a, b):
    """Mean per-pixel cosine similarity over channels and relative L2 ``|a - b| / |b|``, ``a`` resized
    (bilinear) to ``b``'s size first."""
    a = F.interpolate(a.float(), size=b.shape[-2:], mode='bilinear', align_corners=False)
    b = b.float()
    return F.cosine_similarity(a, b, dim=1).mean().item(), ((a - b).norm() / b.norm()).item()


def run(rep, args):
    if args.quick:
        args.seg, args.size = 'HRNet-W18-small', '96x64'
    args.w, args.h = parse_size(args.size)
    for section in (section_latency, section_levers, section_seg_scale):
        section(rep, args)


def section_latency(rep, args):
    rep.block('inference-latency')
    rep.note(
        'Configurations: '
        + '; '.join(f'`{k}` = `{json.dumps(v)}`' for k, v in CONFIGS.items())
        + " (`default` is the option files' configuration); base preset, all rows in the same rounds."
    )
    for device in devices():
        _latency_600x400(rep, args, device)


def _autocast_call(model, fn, *args):
    with model.autocast():
        return fn(*args)


def _latency_600x400(rep, args, device):
    """The latency table on ``device``."""
    models = {name: build(model_options(args.seg, extra=extra), device) for name, extra in CONFIGS.items()}
    base = models['default']
    for m in models.values():
        m.net_g.load_state_dict(base.net_g.state_dict())
    prior = base.seg_prior
    x = test_image(args.h, args.w).to(device)
    feats = base.sem_features(x)

    def infer(fn, *args, **kwargs):  # fn(*args, **kwargs) under inference_mode
        return lambda: torch.inference_mode()(fn)(*args, **kwargs)

    fast_prior, fast_x = models['perf'].seg_prior, x.contiguous(memory_format=torch.channels_last)
    fns = {
        'HRNet-W48 forward (backbone + head)': infer(prior, x),
        'HRNet-W48 forward, bf16 + channels_last': infer(_autocast_call, models['perf'], fast_prior, fast_x),
        'HRNet-W48 backbone only (return_logits=False)': infer(prior, x, return_logits=False),
        'enhancer alone, one pass (features given)': infer(base.net_g.enhance, x, feats),
        'enhancer alone, with C2F decoder (features given, no prior)': infer(
            base.net_g, x, feats, prior=lambda img: feats
        ),
        'whole pipeline, default, grad enabled': functools.partial(run_pipeline, base, x, 'grad'),
        'whole pipeline, default, no_grad (as DeepSPGModel.test)': functools.partial(run_pipeline, base, x, 'no_grad'),
        'whole pipeline, default, inference_mode': functools.partial(run_pipeline, base, x, 'inference'),
    }
    for name, model in models.items():
        if name != 'default':
            fns[f'whole pipeline, {name}, inference_mode'] = functools.partial(run_pipeline, model, x, 'inference')
    t = rounds(fns, args.repeats, device=device)
    ref = 'HRNet-W48 forward (backbone + head)'
    rows = [[device.type, name.replace('HRNet-W48', args.seg), t.fmt(name), t.fmt_ratio(name, ref)] for name in t]
    rep.table(['device', f'what ({args.w}x{args.h})', 'latency', f'vs {args.seg} forward'], rows)
    rep.data.setdefault('latency', {})[device.type] = dict(t)


# ---- levers ---------------------------------------------------------------------------------------
def _nograd(fn, amp=False):
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16) if amp else nullcontext():
        return fn()


def section_levers(rep, args):
    from deepspg_basicsr.priors import build_clip_prior

    n = args.repeats
    h, w = args.h, args.w
    x = test_image(h, w)
    rep.block('inference-levers')
    rep.note(f'Input 1x3x{h}x{w} (a demo test image resized), base preset, {args.seg}; medians of {n} rounds.')
    model = build(model_options(args.seg))
    net, prior = model.net_g.eval(), model.seg_prior
    feats = model.sem_features(x)

    rep.note('### 1. No gradient graph where none is needed')
    no_graph, on_output = 'no graph, with or without no_grad', lambda: prior(x.clone().requires_grad_(True))
    rows = [
        ['prior on the input (lq needs no grad; prior frozen)', lambda: prior(x, return_logits=False), no_graph],
        ['prior on the ground truth (semantic-loss target)', lambda: prior(x), no_graph],
        ['prior on the output (semantic loss; gradient to the output)', on_output, 'needed'],
    ]
    rows = [[label, f'{saved_activation_mib(fn):.0f}', note] for label, fn, note in rows]
    net.train()
    before = saved_activation_mib(lambda: net(x, feats, prior=model.c2f_features, coarse_grad=True))
    after = saved_activation_mib(lambda: net(x, feats, prior=model.c2f_features))
    net.eval()
    rows += [
        ['enhancer + C2F, coarse decoder with a graph (before)', f'{before:.0f}', ''],
        ['enhancer + C2F, coarse decoder without (after, default)', f'{after:.0f}', f'-{1 - after / before:.0%}'],
    ]
    rep.table(['training forward', 'saved for backward (MiB)', 'note'], rows)

    rep.note('### 2. Prior passes and the C2F pass')
    calls = []
    hook = prior.register_forward_pre_hook(lambda *a: calls.append(1))
    run_pipeline(model, x)
    hook.remove()

    def two_passes():  # C2F as first written: two full enhancement passes
        with torch.no_grad():
            out = net.enhance(x, feats)['out']
            return net.enhance(x, model.c2f_features(out.clamp(0, 1)))['out']

    def reuse():
        with torch.no_grad():
            return net(x, feats, prior=model.c2f_features)

    assert torch.equal(two_passes(), reuse())
    t = rounds({'two full passes (before)': two_passes, 'encoder reused (after, default)': reuse}, n)
    rep.timings(['enhancer + C2F incl. its prior pass, no_grad', 'latency'], t)
    rep.note(
        f'Prior passes per image at inference: {len(calls)} (the input; the coarse result, for C2F), both '
        'backbone-only (`return_logits=False`); C2F output identical to two full passes (asserted).'
    )

    rep.note('### 3. Cached CLIP text embeddings')
    clip = build_clip_prior({'clip_model': 'DeepSPG-CLIP-tiny' if args.quick else 'ViT-B-16', 'clip_pretrained': None})
    encode, cached = (lambda: clip.encode_text(clip.prompts)), (lambda: clip.text_embeddings(clip.prompts))
    assert torch.equal(encode(), cached())
    t = rounds({'re-encode the 2 prompts every iteration': encode, 'cached (default)': cached}, n)
    rep.timings(['CLIP text tower, 2 prompts', 'latency'], t)

    rep.note('### 4-5. channels_last and mixed precision (bf16 autocast)')
    rows = []
    xs = {'NCHW': x, 'channels_last': x.contiguous(memory_format=torch.channels_last)}
    parts = (
        (f'{args.seg} backbone', prior, (), {'return_logits': False}),
        ('DeepSPG base, one pass', net, (feats,), {}),
    )
    for part, module, extra, kw in parts:
        copies = {'NCHW': module, 'channels_last': copy.deepcopy(module).to(memory_format=torch.channels_last)}
        fns = {}
        for fmt, mod in copies.items():
            for amp in ('fp32', 'bf16'):
                call = lambda mod=mod, xi=xs[fmt], extra=extra, kw=kw: mod(xi, *extra, **kw)  # noqa: E731
                fns[(fmt, amp)] = lambda call=call, amp=amp: _nograd(call, amp == 'bf16')
        t = rounds(fns, n)
        rows += [[part, fmt, amp, t.fmt((fmt, amp)), t.fmt_ratio((fmt, amp), ('NCHW', 'fp32'))] for fmt, amp in t]
        del copies
    rep.table(['part (no_grad)', 'memory format', 'precision', 'latency', 'time vs NCHW fp32'], rows)


# ---- seg_scale ------------------------------------------------------------------------------------
def section_seg_scale(rep, args):
    h, w = args.h, args.w
    rep.block('inference-seg-scale')
    rep.note(f'Input 1x3x{h}x{w} (a demo test image resized), {args.seg} and the base enhancer, random weights.')
    model = build(model_options(args.seg))
    x = test_image(h, w)
    full_feats = model.sem_features(x, 1.0)
    ref_out = run_pipeline(model, x)
    scales = (1.0, 0.75, 0.5, 0.25)
    timing = rounds({s: (lambda s=s: model.sem_features(x, s)) for s in scales}, args.repeats)
    rows, base_opt = [], model.opt
    for s in scales:
        sims = [cosine_and_rel_l2(f, ref) for f, ref in zip(model.sem_features(x, s), full_feats)]
        row = [f'{s:g}', timing.fmt(s)] + [' / '.join(f'{v:.3f}' for v in vals) for vals in zip(*sims)]
        # both passes at s (seg_scale), the first only (c2f_seg_scale 1), the C2F pass only
        for prior_opt in ({'seg_scale': s}, {'seg_scale': s, 'c2f_seg_scale': 1.0}, {'c2f_seg_scale': s}):
            model.opt = dict(base_opt, prior=dict(base_opt['prior'], **prior_opt))
            row.append(f'{psnr(run_pipeline(model, x), ref_out):.1f}')
        model.opt = base_opt
        rows.append(row)
    rep.table(
        [
            'scale',
            f'{args.seg} backbone latency',
            'feature cosine (branch 0 / 1 / 2)',
            'feature rel. L2 (0 / 1 / 2)',
            'output PSNR (dB), both passes (`seg_scale`)',
            'first pass only (`seg_scale`, `c2f_seg_scale: 1`)',
            'C2F pass only (`c2f_seg_scale`)',
        ],
        rows,
    )
