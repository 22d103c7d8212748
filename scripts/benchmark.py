"""Benchmark DeepSPG: sizes, inference latency and memory, a training iteration, speed levers.

Not a test: it measures, prints a report and (full run) writes it to ``docs/BENCHMARKS.md``.
Every network has **random weights** (nothing is downloaded); speed and memory do not depend
on the weights, the feature-fidelity figures of ``seg_scale`` do (somewhat).

Sections (``--only`` picks some; all by default, in this order):

* ``sizes``: parameters and GFLOPs (fvcore ``FlopCountAnalysis(net, 1x3x256x256).total() /
  1024**3``, Retinexformer's protocol) of the enhancer presets and of the priors.
* ``latency``: the HRNet-W48 forward, the enhancer alone and the whole pipeline at 600x400, in
  several configurations, against the target (pipeline <= 1.2x the HRNet-W48 forward).
* ``levers``: each speed lever measured before / after (interleaved repeats, medians).
* ``seg_scale``: the prior at reduced resolution: time, feature fidelity, effect on the output.
* ``memory``: peak memory of inference, one fresh subprocess per case (CPU: peak RSS, ``VmHWM``;
  CUDA: ``torch.cuda.max_memory_allocated``), with the 1920x1080 latencies and a 3840x2160 image
  enhanced with :func:`~deepspg_basicsr.utils.tiling.tiled_forward` (target < 4 GiB).
* ``train``: one training iteration broken down into data loading, prior, enhancer forward /
  backward and each loss, at the demo settings and at LOL-v1 settings (reduced batch on CPU),
  against the target (all four losses <= 2x pixel + edge alone, demo settings).

CUDA rows are added when CUDA is available.

Usage::

    python scripts/benchmark.py                  # full run (15-25 min, shared 2-core CPU): docs/BENCHMARKS.md
    python scripts/benchmark.py --quick          # smaller run (~6 min), prints only (or --out FILE)
    python scripts/benchmark.py --only sizes levers --out /tmp/b.md
"""

import argparse
import copy
import datetime
import functools
import json
import logging
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import nullcontext

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
import numpy as np
import torch
import torch.nn.functional as F
from basicsr.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEG_CONFIGS = {
    'HRNet-W48': ('hrnet/fcn_hr48_4xb4-160k_ade20k-512x512.py', [48, 96, 192]),
    'HRNet-W18-small': ('hrnet/fcn_hr18s_4xb4-160k_ade20k-512x512.py', [18, 36, 72]),
}
PRESETS = {'base': {'num_feat': 16, 'illum_feat': 16}, 'large': {'num_feat': 32, 'illum_feat': 32}}
#: Inference configurations compared (``default``: the option files'). ``perf``: bf16 autocast and
#: channels_last for enhancer and prior (see the ``levers`` section); ``fast``: also the first prior
#: pass at half resolution (its features reach the output only through the coarse result);
#: ``fastest``: the C2F prior pass at half resolution as well.
PERF = {'amp': 'bf16', 'channels_last': True}
FAST_CONFIG = {'perf': PERF, 'prior': {'seg_scale': 0.5, 'c2f_seg_scale': 1.0}}
CONFIGS = {
    'default': {},
    'perf': {'perf': PERF},
    'fast': FAST_CONFIG,
    'fastest': {'perf': PERF, 'prior': {'seg_scale': 0.5, 'c2f_seg_scale': 0.5}},
}
USAGE = """## Using the levers

Options (all off by default; `deepspg_basicsr/utils/perf.py`, `DeepSPGModel`). The `fast`
configuration above is:

```yaml
perf:
  amp: bf16            # none | bf16 | fp16 (CUDA only, with a gradient scaler in training)
  channels_last: true  # false | true (enhancer and priors) | [enhancer] | [prior]
  compile: false       # true | {torch.compile kwargs}: compiles the enhancer in place
prior:
  seg_scale: 0.5       # the prior on the input at half resolution (default 1.0)
  c2f_seg_scale: 1.0   # the C2F prior pass (default: seg_scale); its features feed the final decoder
```

Always on (no option, results unchanged): the C2F pass reuses the encoder and its coarse decoder runs
without a gradient graph; priors on lq / gt run under `no_grad`; prior passes that feed the enhancer
skip the decode head; CLIP text embeddings are computed once; `DeepSPGModel.test` runs under
`torch.inference_mode`.
"""
DEMO_ROOT = os.path.join(ROOT, 'datasets', 'demo', 'LOL-v1')
SECTIONS = ('sizes', 'latency', 'levers', 'seg_scale', 'memory', 'train')
LOSS_NAMES = ('pixel', 'edge', 'semantic', 'clip')


# ---- helpers ------------------------------------------------------------------------------------
def devices():
    """Devices to measure: the CPU, and CUDA when there is one."""
    return [torch.device('cpu')] + ([torch.device('cuda')] if torch.cuda.is_available() else [])


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_rss_mib():
    """Peak resident set size of this process in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the peak of this address space (``ru_maxrss`` would
    carry the parent's peak over ``fork`` + ``exec``); elsewhere ``ru_maxrss`` (bytes on macOS).
    """
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:')) / 2**10
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10


def bench(fns, repeats, warmup=1, device=None):
    """Time callables, interleaved: after ``warmup`` calls of each, ``repeats`` rounds calling each
    once in turn (so that drifting load on a shared machine hits all of them alike).

    Args:
        fns (dict[str, callable]): Name -> callable without arguments.
        repeats (int): Timed calls of each.
        warmup (int): Untimed calls of each first. Default: 1.
        device (torch.device | None): Synchronised around each call when CUDA. Default: CPU.

    Returns:
        dict[str, list[float]]: Name -> the times in seconds.
    """
    device = device or torch.device('cpu')
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def med(ts):
    return statistics.median(ts)


def fmt_s(ts):
    """'1.234 s (1.1-1.5, n=5)' for a list of times."""
    if len(ts) == 1:
        return f'{ts[0]:.3f} s (n=1)'
    return f'{med(ts):.3f} s ({min(ts):.2f}-{max(ts):.2f}, n={len(ts)})'


def saved_activation_mib(fn):
    """Run ``fn`` and return (its result, MiB of distinct tensors autograd saved for backward)."""
    seen = {}

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape))
        seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values()) / 2**20


def psnr(a, b):
    mse = F.mse_loss(a.float().clamp(0, 1), b.float().clamp(0, 1)).item()
    return float('inf') if mse == 0 else 10 * math.log10(1 / mse)


def cosine_and_rel_l2(a, b):
    """Mean per-pixel cosine similarity over channels and relative L2 ``|a - b| / |b|``."""
    a, b = a.float(), b.float()
    cos = F.cosine_similarity(a, b, dim=1).mean().item()
    return cos, ((a - b).norm() / b.norm()).item()


def test_image(h, w, seed=0):
    """A dim natural image (a demo test image, resized) (1, 3, h, w) in [0, 1], or noise-free synthetic."""
    import cv2

    path = os.path.join(DEMO_ROOT, 'eval15', 'low')
    names = sorted(os.listdir(path)) if os.path.isdir(path) else []
    if names:
        img = cv2.imread(os.path.join(path, names[seed % len(names)]), cv2.IMREAD_COLOR)[..., ::-1]
        img = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(h, w), mode='bicubic', align_corners=False)
    return (0.15 * base).clamp(0, 1)


def model_options(
    seg='HRNet-W48',
    clip='ViT-B-16',
    preset='base',
    extra=None,
    is_train=False,
    losses=('pixel', 'edge', 'semantic', 'clip'),
):
    """Options of a DeepSPGModel with random priors (nothing downloaded).

    Args:
        seg (str): Key of :data:`SEG_CONFIGS`.
        clip (str): open_clip model name of the CLIP prior (training only).
        preset (str): ``base`` or ``large``.
        extra (dict | None): Sections merged one level deep (``perf``, ``prior``, ``network_g``).
        is_train (bool): Training options (losses, optimiser).
        losses (tuple[str]): Losses on in training.
    """
    config, sem_channels = SEG_CONFIGS[seg]
    opt = {
        'name': 'benchmark',
        'model_type': 'DeepSPGModel',
        'num_gpu': 1 if torch.cuda.is_available() else 0,
        'is_train': is_train,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'network_g': dict(type='DeepSPG', num_blocks=[4, 3, 2], sem_channels=sem_channels, **PRESETS[preset]),
        'prior': {
            'seg_config': config,
            'seg_checkpoint': None,
            'seg_branches': [0, 1, 2],
            'clip_model': clip,
            'clip_pretrained': None,
        },
        'path': {},
        'perf': {},
    }
    if is_train:
        all_losses = {
            'pixel': ('pixel_opt', {'type': 'SPGPixelLoss', 'loss_weight': 1.0}),
            'edge': ('edge_opt', {'type': 'SPGEdgeLoss', 'loss_weight': 1.0}),
            'semantic': ('semantic_opt', {'type': 'SemanticKLLoss', 'loss_weight': 0.01}),
            'clip': ('clip_opt', {'type': 'CLIPMultimodalLoss', 'loss_weight': 0.01}),
        }
        opt['train'] = {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 3e-4, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5},
        }
        for name in losses:
            key, loss_opt = all_losses[name]
            opt['train'][key] = loss_opt
    for section, values in copy.deepcopy(extra or {}).items():
        opt.setdefault(section, {}).update(values)
    return opt


def build(opt, device=None, seed=0):
    """Build a DeepSPGModel, the enhancer's random weights drawn from ``seed`` (the priors seed
    their own); the random-weight warnings are silenced by ``main``."""
    if device is not None and device.type == 'cpu':
        opt = dict(opt, num_gpu=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(opt)


def run_pipeline(model, x, mode='inference'):
    """The model's inference path: prior + enhancer (+ C2F), as ``DeepSPGModel.test`` runs it."""
    ctx = {'inference': torch.inference_mode, 'no_grad': torch.no_grad, 'grad': nullcontext}[mode]
    with ctx():
        return model.enhance(model.net_g, x)


class Report:
    """Markdown lines, printed as they come."""

    def __init__(self):
        self.lines = []

    def __call__(self, line=''):
        print(line, flush=True)
        self.lines.append(line)

    def failure(self, what):
        """The traceback of the exception being handled, as a markdown block titled ``what``."""
        self(f'**{what} failed:**')
        self()
        self('```')
        self(traceback.format_exc().rstrip())
        self('```')
        self()

    def table(self, header, rows):
        self('| ' + ' | '.join(header) + ' |')
        self('|' + '---|' * len(header))
        for row in rows:
            self('| ' + ' | '.join(str(c) for c in row) + ' |')
        self()


# ---- sizes ----------------------------------------------------------------------------------------
def _sdpa_flop_handle(inputs, outputs):
    """fvcore handle for ``aten::scaled_dot_product_attention``: q k^T and attn v multiply-adds."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(i) for i in inputs[:3])
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def _gflops(module, inputs):
    """(GFLOPs, FLOPs by module name) of ``module`` on ``inputs`` (fvcore, traced with grad enabled
    so that attention is not fused into an op fvcore cannot count)."""
    from fvcore.nn import FlopCountAnalysis

    flops = FlopCountAnalysis(module.eval(), inputs).set_op_handle(
        'aten::scaled_dot_product_attention', _sdpa_flop_handle
    )
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    return flops.total() / 1024**3, flops.by_module()


class _EnhancerPass(torch.nn.Module):
    """Adapter: one enhancement pass with the prior features as positional inputs (fvcore traces
    positional tensors)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, *feats):
        return self.net.enhance(x, list(feats))['out']


class _PriorForward(torch.nn.Module):
    """Adapter: the prior's forward with the decode head, returning the logits."""

    def __init__(self, prior):
        super().__init__()
        self.prior = prior

    def forward(self, x):
        return self.prior(x)['logits']


def section_sizes(rep, args):
    from deepspg_basicsr.archs.deepspg_arch import DeepSPG
    from deepspg_basicsr.priors import SegmentationPrior
    from deepspg_basicsr.priors.clip_prior import build_open_clip

    rep('## Sizes')
    rep()
    rep(
        "fvcore `FlopCountAnalysis(net, 1x3x256x256).total() / 1024**3` (Retinexformer's protocol; fvcore counts "
        'one multiply-add as one FLOP). The enhancer is counted for one pass with the HRNet-W48 features as extra '
        'inputs (priors excluded, as published); the coarse-to-fine pass adds one decoder (the encoder is reused). '
        "CLIP's image tower is counted at its own input size, 224x224 (every image is resized to it), with a handle "
        'for `scaled_dot_product_attention`, which fvcore does not know.'
    )
    rep()
    rows = []
    published = {'base': '0.55 / 6.91', 'large': '2.13 / 26.03'}
    x256 = torch.rand(1, 3, 256, 256)
    encoder_parts = ('illumination', 'embed', 'encoders', 'downs')
    for name, kwargs in PRESETS.items():
        net = DeepSPG(**kwargs)
        feats = [torch.rand(1, c, 256 // s, 256 // s) for c, s in zip(net.sem_channels, (4, 8, 16))]
        total, by_module = _gflops(_EnhancerPass(net), (x256, *feats))
        enc = sum(by_module.get(f'net.{part}', 0) for part in encoder_parts) / 1024**3
        params = sum(p.numel() for p in net.parameters())
        rows.append([f'DeepSPG {name}, one pass', f'{params / 1e6:.3f}', f'{total:.2f}', published[name]])
        rows.append([f'DeepSPG {name}: encoder part (illumination + encoder)', '', f'{enc:.2f}', ''])
        rows.append([f'DeepSPG {name}: decoder part (SEM + decoder), added by C2F', '', f'{total - enc:.2f}', ''])
    for seg in ('HRNet-W48', 'HRNet-W18-small'):
        prior = SegmentationPrior(SEG_CONFIGS[seg][0])
        total, by_module = _gflops(_PriorForward(prior), (x256,))
        bb = sum(p.numel() for p in prior.backbone.parameters())
        head = sum(p.numel() for p in prior.decode_head.parameters())
        rows.append([f'{seg} backbone', f'{bb / 1e6:.2f}', f'{by_module["prior.backbone"] / 1024**3:.2f}', ''])
        rows.append([f'{seg} backbone + FCN head', f'{(bb + head) / 1e6:.2f}', f'{total:.2f}', ''])
        del prior
    clip = build_open_clip('ViT-B-16', None)
    visual = sum(p.numel() for p in clip.visual.parameters())
    total = sum(p.numel() for p in clip.parameters())
    gflops, _ = _gflops(clip.visual, (torch.rand(1, 3, 224, 224),))
    rows.append(['CLIP ViT-B-16 image tower (224x224)', f'{visual / 1e6:.2f}', f'{gflops:.2f}', ''])
    rows.append(['CLIP ViT-B-16, image + text towers', f'{total / 1e6:.2f}', '', ''])
    del clip
    rep.table(['network', 'params (M)', 'GFLOPs', 'published (M / G)'], rows)


# ---- latency --------------------------------------------------------------------------------------
def section_latency(rep, args):
    rep('## Inference latency at 600x400')
    rep()
    rep(
        'Whole pipeline = what `DeepSPGModel.test` runs: HRNet-W48 backbone on the input, the enhancer, HRNet-W48 '
        'backbone on the coarse result, the decoder again (C2F). Configurations: '
        + '; '.join(f'`{k}` = `{json.dumps(v)}`' for k, v in CONFIGS.items())
        + " (`default` is the option files' configuration). Base preset; all rows timed interleaved, medians after "
        'one warm-up; the 1920x1080 rows are in the memory section (one subprocess each).'
    )
    rep()
    for device in devices():
        _latency_600x400(rep, args, device)


def _autocast_call(model, fn, *args):
    with model.autocast():
        return fn(*args)


def _latency_600x400(rep, args, device):
    """The latency table at 600x400 on ``device``; records the pipeline / prior ratios in ``args.results``."""
    models = {name: build(model_options(extra=extra), device) for name, extra in CONFIGS.items()}
    base = models['default']
    for m in models.values():
        m.net_g.load_state_dict(base.net_g.state_dict())
    prior = base.seg_prior
    x = test_image(400, 600).to(device)
    feats = base.sem_features(x)

    def infer(fn, *args, **kwargs):
        def call():
            with torch.inference_mode():
                return fn(*args, **kwargs)

        return call

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
    t = bench(fns, args.repeats, device=device)
    ref = med(t['HRNet-W48 forward (backbone + head)'])
    rows = [[device.type, name, fmt_s(ts), f'{med(ts) / ref:.2f}x'] for name, ts in t.items()]
    rep.table(['device', 'what (600x400)', 'latency', 'vs HRNet-W48 forward'], rows)
    ref_perf = med(t['HRNet-W48 forward, bf16 + channels_last'])
    for name in CONFIGS:
        key = f'whole pipeline, {name}, inference_mode'
        same = ref_perf if name != 'default' else ref
        args.results.setdefault('pipeline_ratio', {})[(device.type, name)] = (med(t[key]) / ref, med(t[key]) / same)


# ---- levers ---------------------------------------------------------------------------------------
def _nograd(fn, amp=False):
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16) if amp else nullcontext():
        return fn()


def section_levers(rep, args):
    from deepspg_basicsr.priors import build_clip_prior

    n = args.repeats
    h, w = 400, 600
    x = test_image(h, w)
    rep('## Speed levers, before / after (CPU)')
    rep()
    rep(
        f'Input 1x3x{h}x{w} (a demo test image resized), base preset, HRNet-W48. Variants are timed interleaved '
        f'(round-robin after one warm-up each); medians of {n}, (min-max) in brackets. "Saved for backward" sums '
        'the distinct tensors autograd keeps for the backward pass (`torch.autograd.graph.saved_tensors_hooks`), '
        "a deterministic measure of a graph's memory. The `no_grad` / `inference_mode` rows are in the latency "
        'table above.'
    )
    rep()
    model = build(model_options())
    net, prior = model.net_g.eval(), model.seg_prior
    feats = model.sem_features(x)

    rep('### 1. No gradient graph where none is needed')
    rep()
    rows = []
    _, mib = saved_activation_mib(lambda: prior(x, return_logits=False))
    rows.append(
        ['prior on the input (lq needs no grad; prior frozen)', f'{mib:.0f}', 'no graph, with or without no_grad']
    )
    _, mib = saved_activation_mib(lambda: prior(x)['logits'])
    rows.append(['prior on the ground truth (semantic-loss target)', f'{mib:.0f}', 'no graph, with or without no_grad'])
    _, mib = saved_activation_mib(lambda: prior(x.clone().requires_grad_(True))['logits'])
    rows.append(['prior on the output (semantic loss; gradient to the output)', f'{mib:.0f}', 'needed'])
    net.train()
    _, before = saved_activation_mib(lambda: net(x, feats, prior=model.c2f_features, coarse_grad=True))
    _, after = saved_activation_mib(lambda: net(x, feats, prior=model.c2f_features))
    net.eval()
    rows.append(['enhancer + C2F, coarse decoder with a graph (before)', f'{before:.0f}', ''])
    rows.append(
        ['enhancer + C2F, coarse decoder without (after, default)', f'{after:.0f}', f'-{1 - after / before:.0%}']
    )
    rep.table(['training forward', 'saved for backward (MiB)', 'note'], rows)
    rep(
        "The priors' weights are frozen, so a prior pass on an input that needs no gradient (lq, gt) builds no "
        'graph even outside `no_grad`: there `no_grad` is a guarantee, not a saving. The graph that was not needed '
        'was the C2F coarse pass: its output reaches the result only through the prior under `no_grad`, so no '
        'gradient can flow back through it. It now runs without a graph (`DeepSPG.forward(coarse_grad=False)`); '
        'output and gradients are bit-identical (tests/test_perf_levers.py).'
    )
    rep()

    rep('### 2. Prior passes and the C2F pass')
    rep()
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
    t = bench({'two full passes (before)': two_passes, 'encoder reused (after, default)': reuse}, n)
    rep.table(['enhancer + C2F incl. its prior pass, no_grad', 'latency'], [[k, fmt_s(v)] for k, v in t.items()])
    rep(
        f'Prior passes per image at inference: {len(calls)} (the input; the coarse result, for C2F), both '
        'backbone-only (`return_logits=False`; the decode head runs only for the semantic loss; compare the first '
        'two rows of the latency table). Per training iteration: 4 (input; coarse result; output, with grad, for '
        'the semantic loss; ground truth, no grad). None can be shared: each sees a different image, and the C2F '
        'features are needed to compute the output that the loss then segments. The input features are computed '
        'once per batch and serve all three SEM scales. The C2F pass reuses the illumination estimate and the '
        'encoder (only the decoder sees the prior): output identical (asserted).'
    )
    rep()

    rep('### 3. Cached CLIP text embeddings')
    rep()
    clip = build_clip_prior({'clip_model': 'ViT-B-16', 'clip_pretrained': None})
    assert torch.equal(clip.encode_text(clip.prompts), clip.text_embeddings(clip.prompts))
    t = bench(
        {
            're-encode the 2 prompts every iteration': lambda: clip.encode_text(clip.prompts),
            'cached (default)': lambda: clip.text_embeddings(clip.prompts),
        },
        n,
    )
    rep.table(['ViT-B-16 text tower, 2 prompts', 'latency'], [[k, fmt_s(v)] for k, v in t.items()])

    rep('### 4-5. channels_last and mixed precision (bf16 autocast)')
    rep()
    rows = []
    for part, module in (('HRNet-W48 backbone', prior), ('DeepSPG base, one pass', net)):
        fns = {}
        copies = {'NCHW': module, 'channels_last': copy.deepcopy(module).to(memory_format=torch.channels_last)}
        xs = {'NCHW': x, 'channels_last': x.contiguous(memory_format=torch.channels_last)}
        for fmt, mod in copies.items():
            for amp in ('fp32', 'bf16'):
                if part.startswith('HRNet'):
                    call = lambda mod=mod, xi=xs[fmt]: mod(xi, return_logits=False)  # noqa: E731
                else:
                    call = lambda mod=mod, xi=xs[fmt]: mod(xi, feats)  # noqa: E731
                fns[(fmt, amp)] = lambda call=call, amp=amp: _nograd(call, amp == 'bf16')
        t = bench(fns, n)
        ref = med(t[('NCHW', 'fp32')])
        rows += [[part, fmt, amp, fmt_s(ts), f'{ref / med(ts):.2f}x'] for (fmt, amp), ts in t.items()]
        del copies
    rep.table(['part (no_grad)', 'memory format', 'precision', 'latency', 'speed-up'], rows)
    rep(
        'Agreement (tests/test_perf_levers.py): channels_last within 1e-5 of NCHW in fp32 (enhancer, prior, and the '
        'whole model); bf16 within the PSNR tolerance stated there. Both levers help both parts, and most '
        'together, hence the `perf` configuration.'
    )
    rep()

    if args.compile:
        from deepspg_basicsr.archs.deepspg_arch import DeepSPG

        rep('### 6. torch.compile (enhancer, inductor)')
        rep()
        eager = DeepSPG().eval()
        compiled = copy.deepcopy(eager)
        compiled.compile()
        start = time.perf_counter()
        out = _nograd(lambda: compiled(x, feats))
        compile_s = time.perf_counter() - start
        diff = (out - _nograd(lambda: eager(x, feats))).abs().max().item()
        t = bench(
            {
                'eager': lambda: _nograd(lambda: eager(x, feats)),
                'compiled': lambda: _nograd(lambda: compiled(x, feats)),
            },
            n,
        )
        rep.table(['DeepSPG base, one pass, fp32, no_grad', 'latency'], [[k, fmt_s(v)] for k, v in t.items()])
        speedup = med(t['eager']) / med(t['compiled'])
        rep(
            f"First call (compilation) {compile_s:.0f} s (after a hit in inductor's on-disk cache, if an earlier "
            'run compiled the same graph; a cold compile took about 3 minutes on the 2-core development machine); '
            f'max |compiled - eager| {diff:.1e}; steady-state speed-up '
            f'{speedup:.2f}x. Every new input size recompiles (or use `perf.compile: {{dynamic: true}}`), so it '
            'pays off only for long runs at a fixed size (training crops); off by default.'
        )
        rep()


# ---- seg_scale ------------------------------------------------------------------------------------
def section_seg_scale(rep, args):
    h, w = 400, 600
    rep('## The prior at reduced resolution (`prior.seg_scale`, `prior.c2f_seg_scale`)')
    rep()
    rep(
        f'Input 1x3x{h}x{w} (a demo test image resized), HRNet-W48 and the base enhancer with **random weights**: '
        'the fidelity figures say how much the features change, not how much a trained network would care. '
        "Features at reduced scale are resized (bilinear) to the full-scale features' size and compared per "
        'branch: cosine similarity over channels (mean over pixels) and relative L2 `|f_s - f_1| / |f_1|`. Output '
        "PSNR is against the default (full-scale) pipeline's output, same weights, fp32."
    )
    rep()
    model = build(model_options())
    x = test_image(h, w)
    full_feats = model.sem_features(x, 1.0)
    ref_out = run_pipeline(model, x)
    scales = (1.0, 0.75, 0.5, 0.25)
    timing = bench({s: (lambda s=s: model.sem_features(x, s)) for s in scales}, args.repeats)
    rows = []
    base_opt = model.opt
    for s in scales:
        sims = []
        for f, ref in zip(model.sem_features(x, s), full_feats):
            sims.append(
                cosine_and_rel_l2(F.interpolate(f, size=ref.shape[-2:], mode='bilinear', align_corners=False), ref)
            )
        out_psnr = {}
        variants = {
            'both': {'seg_scale': s},
            'first': {'seg_scale': s, 'c2f_seg_scale': 1.0},
            'c2f': {'c2f_seg_scale': s},
        }
        for key, prior_opt in variants.items():
            model.opt = dict(base_opt, prior=dict(base_opt['prior'], **prior_opt))
            out_psnr[key] = psnr(run_pipeline(model, x), ref_out)
            model.opt = base_opt
        rows.append(
            [
                f'{s:g}',
                fmt_s(timing[s]),
                ' / '.join(f'{c:.3f}' for c, _ in sims),
                ' / '.join(f'{r:.3f}' for _, r in sims),
            ]
            + [f'{out_psnr[k]:.1f}' for k in variants]
        )
    rep.table(
        [
            'scale',
            'HRNet-W48 backbone latency',
            'feature cosine (branch 0 / 1 / 2)',
            'feature rel. L2 (0 / 1 / 2)',
            'output PSNR (dB), both passes (`seg_scale`)',
            'first pass only (`seg_scale`, `c2f_seg_scale: 1`)',
            'C2F pass only (`c2f_seg_scale`)',
        ],
        rows,
    )
    rep(
        '`seg_scale: 1.0` runs exactly the default path (no resize; tested identical). With C2F the final '
        "decoder sees only the C2F pass's features; the first pass's features reach the output only through the "
        'coarse image the C2F prior looks at. So reducing the first pass only (`seg_scale: 0.5, c2f_seg_scale: 1`) '
        'moves the output least, and that is what `fast` does.'
    )
    rep()


# ---- memory (subprocesses) ------------------------------------------------------------------------
def worker(spec):
    """Run one memory case in this (fresh) process; print a JSON line with the results."""
    device = torch.device(spec.get('device', 'cpu'))
    h, w = spec['size']
    kind = spec['kind']
    grad = spec.get('grad', False)
    if kind == 'prior':
        from deepspg_basicsr.priors import SegmentationPrior

        prior = SegmentationPrior(SEG_CONFIGS['HRNet-W48'][0]).to(device)

        def fn(x):
            with torch.set_grad_enabled(grad):
                out = prior(x.requires_grad_(grad))['logits']
                if grad:
                    out.mean().backward()
            return out

    else:
        model = build(model_options(extra=CONFIGS[spec.get('config', 'default')]), device)
        tile = spec.get('tile')

        def fn(x):
            with torch.inference_mode():
                if kind == 'enhancer':
                    return model._run_net(model.net_g, x, model.sem_features(x), prior=None)
                if not tile:
                    return model.enhance(model.net_g, x)
                from deepspg_basicsr.utils.tiling import tiled_forward

                return tiled_forward(
                    lambda t: model.enhance(model.net_g, t.to(device)).clamp(0, 1).cpu(), x, tile, 32, 4
                )

    if spec.get('warmup'):  # one run at 600x400 first (kernels, allocator)
        fn(test_image(400, 600).to(device))
    x = test_image(h, w) if h * w <= 1920 * 1080 else _synthetic_dim(h, w)
    if not spec.get('tile'):
        x = x.to(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_rss_mib()
    times = []
    for _ in range(spec.get('runs', 1)):
        sync(device)
        start = time.perf_counter()
        out = fn(x)
        sync(device)
        times.append(time.perf_counter() - start)
        del out
    result = {'rss_before_mib': before, 'peak_rss_mib': peak_rss_mib(), 'times': times}
    if device.type == 'cuda':
        result['cuda_peak_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
    print('RESULT ' + json.dumps(result), flush=True)


def _synthetic_dim(h, w, seed=0):
    """A dim image with smooth structure and noise, (1, 3, h, w), built a channel at a time."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(1, 3, h, w)
    for c in range(3):
        base = F.interpolate(torch.rand(1, 1, 16, 16, generator=g), size=(h, w), mode='bicubic', align_corners=False)
        out[0, c] = (0.12 * base[0, 0] + 0.01 * torch.randn(h, w, generator=g)).clamp_(0, 1)
    return out


def run_worker(spec, threads):
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', json.dumps(spec), '--threads', str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT ') :])
    raise RuntimeError(f'worker failed ({shlex.join(cmd)}):\n{proc.stderr[-3000:]}')


def section_memory(rep, args):
    rep('## Peak memory; latency at 1920x1080 and 3840x2160')
    rep()
    rep(
        'Each case runs in a fresh subprocess (`--worker`). CPU: peak resident set size of the whole process '
        '(`VmHWM`: Python, torch, MMSegmentation, the models, the run), and its increase over the peak after '
        'building everything; CUDA: `torch.cuda.max_memory_allocated`. Cases marked "warm-up" run once at 600x400 '
        'first (not timed). "Enhancer alone" is one pass with the input\'s prior features (computed outside the '
        'timing). The tiled case enhances a synthetic dim 3840x2160 image with '
        '`tiled_forward(fn, x, tile=512, overlap=32, pad_multiple=4)`, `fn` the whole pipeline on a tile (the prior '
        'sees the tile, not the whole image), the output accumulated on the CPU.'
    )
    rep()
    big = [2160, 3840] if not args.quick else [1080, 1920]
    cases = [
        ('HRNet-W48 forward, no_grad', {'kind': 'prior', 'size': [400, 600]}),
        ('HRNet-W48 forward + backward to the input', {'kind': 'prior', 'size': [400, 600], 'grad': True}),
        ('whole pipeline, default', {'kind': 'pipeline', 'size': [400, 600]}),
        ('whole pipeline, fast', {'kind': 'pipeline', 'config': 'fast', 'size': [400, 600]}),
    ]
    if not args.quick:
        hd = {'size': [1080, 1920], 'warmup': True, 'runs': 2}
        cases += [
            ('enhancer alone, one pass, default, warm-up', dict(hd, kind='enhancer')),
            ('whole pipeline, default, warm-up', dict(hd, kind='pipeline')),
        ]
    cases.append(
        (
            f'whole pipeline, {args.tiled_config}, tiled 512',
            {'kind': 'pipeline', 'config': args.tiled_config, 'size': big, 'tile': 512},
        )
    )
    rows = []
    for device in devices():
        for name, spec in cases:
            res = run_worker(dict(spec, device=device.type), args.threads)
            h, w = spec['size']
            peak = res.get('cuda_peak_mib', res['peak_rss_mib'])
            over = '' if 'cuda_peak_mib' in res else f'+{res["peak_rss_mib"] - res["rss_before_mib"]:.0f}'
            target = ''
            if spec.get('tile') and big == [2160, 3840]:
                target = f'< 4096 MiB: {"met" if peak < 4096 else "MISSED"}'
                args.results.setdefault('tiled_4k', {})[device.type] = (peak, med(res['times']))
            rows.append([device.type, f'{w}x{h}', name, f'{peak:.0f}', over, fmt_s(res['times']), target])
    rep.table(['device', 'size', 'case', 'peak (MiB)', 'over post-build peak (MiB)', 'time', 'target'], rows)


# ---- training -------------------------------------------------------------------------------------
def _loader(gt_size, batch, root=DEMO_ROOT, generator=None):
    """Endless training batches of the demo data under ``root`` (shuffled by ``generator``)."""
    from deepspg_basicsr.data.paired_llie_dataset import PairedLLIEDataset

    dataset = PairedLLIEDataset(
        {
            'name': 'bench',
            'type': 'PairedLLIEDataset',
            'phase': 'train',
            'dataroot_gt': os.path.join(root, 'our485', 'high'),
            'dataroot_lq': os.path.join(root, 'our485', 'low'),
            'io_backend': {'type': 'disk'},
            'gt_size': gt_size,
            'use_hflip': True,
            'use_rot': True,
        }
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=0, drop_last=True, generator=generator
    )

    def batches():
        while True:
            yield from loader

    return batches()


def train_breakdown(model, batches, repeats):
    """Time the steps of ``DeepSPGModel.optimize_parameters``, in its order, ``repeats`` times.

    Returns:
        dict[str, list[float]]: step -> times (s), the warm-up iteration dropped.
    """
    times = {}
    for _ in range(repeats + 1):  # the first is a warm-up
        _timed_train_step(model, batches, times)
    return {k: v[1:] for k, v in times.items()}


def _timed_train_step(model, batches, times):
    """One training step of ``model`` cut into timed steps, appended to ``times``."""
    dev = model.device

    def timed(name, fn, *args, **kwargs):
        sync(dev)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(dev)
        times.setdefault(name, []).append(time.perf_counter() - start)
        return out

    model.feed_data(timed('data loading (batch from the DataLoader, 0 workers)', next, batches))
    model.optimizer_g.zero_grad(set_to_none=True)
    feats = timed('prior on the input (no_grad)', model.sem_features, model.lq)
    c2f_time = []

    def c2f_prior(img):
        sync(dev)
        start = time.perf_counter()
        out = model.c2f_features(img)
        sync(dev)
        c2f_time.append(time.perf_counter() - start)
        return out

    output = timed('enhancer forward (incl. C2F prior)', model._run_net, model.net_g, model.lq, feats, prior=c2f_prior)
    times.setdefault('  of which: C2F prior on the coarse result', []).append(sum(c2f_time))
    losses = {}
    gt = model.gt
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
        grad += timed(f'{name} backward to the output', torch.autograd.grad, loss.float(), output, retain_graph=True)[0]
    timed('enhancer backward', output.backward, grad)
    timed('optimizer step', model.optimizer_g.step)


def _iteration(model, batches):
    """A training iteration as BasicSR's loop runs it (``feed_data`` + ``optimize_parameters``)."""

    def call():
        model.feed_data(next(batches))
        model.optimize_parameters(1)

    return call


def section_train(rep, args):
    rep('## Training iteration')
    rep()
    rep(
        'Demo data (`datasets/demo`, from `datasets/make_demo_data.py`), random weights, Adam. The breakdown times '
        "the steps of `DeepSPGModel.optimize_parameters` one at a time, in its order (each loss's backward is taken "
        'to the output with `autograd.grad`, then the enhancer backward runs once with the summed gradient); '
        '"whole iteration" is `feed_data` + `optimize_parameters` as training runs them, the configurations '
        'interleaved. Medians after one warm-up.'
    )
    rep()
    settings = [('demo', 'HRNet-W18-small', 'DeepSPG-CLIP-tiny', 64, 4, 'batch 4 (as the demo)')]
    if not args.quick:
        settings.append(('LOL-v1', 'HRNet-W48', 'ViT-B-16', 128, args.lol_batch, ''))
    for device in devices():
        for name, seg, clip, gt_size, batch, note in settings:
            if name == 'LOL-v1':
                batch = 16 if device.type == 'cuda' else args.lol_batch
                note = 'batch 16' if batch == 16 else f'batch {batch} (reduced from 16 on CPU)'
            n = args.repeats if name == 'demo' else max(2, args.repeats // 2)
            rep(f'### {name} settings, {device.type}: {seg} + {clip}, {gt_size}x{gt_size} crops, {note}')
            rep()
            batches = _loader(gt_size, batch)
            full = build(model_options(seg, clip, is_train=True), device)
            parts = train_breakdown(full, batches, n)
            total = sum(med(v) for k, v in parts.items() if not k.startswith(' '))
            rows = [[k, f'{med(v):.3f}', f'{med(v) / total:.0%}'] for k, v in parts.items()]
            rows.append(['**sum of the steps**', f'{total:.3f}', '100%'])
            rep.table(['step', 'median (s)', 'share'], rows)
            configs = {'pixel + edge': ({}, ('pixel', 'edge')), 'all four losses': ({}, tuple(LOSS_NAMES))}
            configs['all four losses, `perf` (bf16 + channels_last)'] = ({'perf': PERF}, tuple(LOSS_NAMES))
            models = {}
            for key, (extra, losses) in configs.items():
                models[key] = build(model_options(seg, clip, is_train=True, losses=losses, extra=extra), device)
                models[key].net_g.load_state_dict(full.net_g.state_dict())
            del full

            t = bench({k: _iteration(m, batches) for k, m in models.items()}, n, device=device)
            ref = med(t['pixel + edge'])
            rep.table(
                ['whole iteration', 'latency', 'vs pixel + edge'],
                [[k, fmt_s(v), f'{med(v) / ref:.2f}x'] for k, v in t.items()],
            )
            if name == 'demo':
                args.results.setdefault('train_ratio', {})[device.type] = {k: med(v) / ref for k, v in t.items()}
            del models


# ---- main -----------------------------------------------------------------------------------------
def header(rep, args):
    import mmseg
    import open_clip

    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    rep('# Benchmarks')
    rep()
    rep(
        'Written by `scripts/benchmark.py` (not a test). **All networks have random weights**: speed and memory do '
        'not depend on them (the `seg_scale` fidelity figures do). Timings are medians of interleaved repeats; on '
        'a machine shared with other jobs they are noisy, see the load averages.'
    )
    rep()
    rep(f'- command: `{args.command}`')
    rep(f'- date: {datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}')
    rep(f'- machine: {platform.system()} {platform.machine()}, CPU {cpu}, {os.cpu_count()} logical cores')
    rep(f'- torch threads: {torch.get_num_threads()} ({args.threads_why})')
    rep(f'- CUDA: {cuda}')
    rep(
        f'- python {platform.python_version()}, torch {torch.__version__}, mmseg {mmseg.__version__}, '
        f'open_clip {open_clip.__version__}'
    )
    rep(f'- load average at the start: {_load()} (1 / 5 / 15 min)')
    rep()


def _load():
    return ' / '.join(f'{v:.1f}' for v in os.getloadavg())


def targets(args):
    """Markdown lines: each target with its measured figure."""
    res = args.results
    lines = ['## Targets', '']
    rows = []
    for dev, ratios in res.get('train_ratio', {}).items():
        r = ratios['all four losses']
        bf = ratios.get('all four losses, `perf` (bf16 + channels_last)')
        extra = f' (with `perf`: {bf:.2f}x)' if bf is not None else ''
        rows.append(
            [
                f'training iteration, all four losses <= 2x pixel + edge (demo settings, {dev})',
                f'{r:.2f}x{extra}',
                'met' if r <= 2 else 'missed',
            ]
        )
    for (dev, name), (r, same) in res.get('pipeline_ratio', {}).items():
        vs_same = '' if name == 'default' else f'; {same:.2f}x the HRNet-W48 forward in bf16 + channels_last'
        rows.append(
            [
                f'whole pipeline at 600x400 <= 1.2x HRNet-W48 forward ({dev}, `{name}`)',
                f'{r:.2f}x the fp32 forward{vs_same}',
                _verdict(r, same),
            ]
        )
    for dev, (peak, secs) in res.get('tiled_4k', {}).items():
        rows.append(
            [
                f'3840x2160 enhanced, peak memory < 4 GiB ({dev}, tiled, `{args.tiled_config}`)',
                f'{peak:.0f} MiB in {secs:.0f} s',
                'met' if peak < 4096 else 'missed',
            ]
        )
    lines += ['| target | measured | |', '|---|---|---|'] + ['| ' + ' | '.join(r) + ' |' for r in rows] + ['']
    if res.get('pipeline_ratio'):
        lines += [
            'The pipeline target is read against the HRNet-W48 forward as the option files run it (float32, NCHW). '
            'Against the HRNet-W48 forward with the same levers (bf16 + channels_last) the pipeline stays at 2-3x: '
            "the enhancer's full-resolution layers (16-64 channels at every pixel) are memory-bound and gain less "
            "from bf16 and channels_last than HRNet's wide low-resolution convolutions, so once the prior is fast "
            'the enhancer dominates (latency table). `fast` and `fastest` also change the output slightly (the '
            '`seg_scale` section).',
            '',
        ]
    return lines


def _verdict(ratio, same_settings):
    if ratio > 1.2:
        return 'missed'
    return 'met' if same_settings <= 1.2 else 'met vs the fp32 forward; missed at equal settings'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='smaller run: 3 repeats; no 1080p, 4K, LOL-v1, compile')
    parser.add_argument('--only', nargs='+', choices=SECTIONS, help='run only these sections')
    parser.add_argument('--out', help='markdown file (default: docs/BENCHMARKS.md for a full run, none otherwise)')
    parser.add_argument('--repeats', type=int, help='timed repeats per measurement (default 3; quick 2)')
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads; 0: auto (1 when the load is >= half the cores)'
    )
    parser.add_argument('--lol-batch', type=int, default=2, help='batch of the LOL-v1 training rows on CPU')
    parser.add_argument('--tiled-config', choices=sorted(CONFIGS), default='fast', help='config of the tiled case')
    parser.add_argument('--compile', action=argparse.BooleanOptionalAction, default=None, help='measure torch.compile')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger('basicsr').setLevel(logging.ERROR)  # the random-weight warnings are expected here
    if args.threads == 0:
        busy = os.getloadavg()[0] >= 0.5 * (os.cpu_count() or 1)
        args.threads = 1 if busy else torch.get_num_threads()
        args.threads_why = (
            'auto: 1, as the machine was busy (1-min load >= half the cores); on the 2-core development machine '
            'shared with other jobs, 2 threads ran 3-4x slower than 1, with wild outliers'
            if busy
            else 'auto: torch default'
        )
    else:
        args.threads_why = '--threads'
    torch.set_num_threads(args.threads)
    if args.worker:
        return worker(json.loads(args.worker))
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.compile = (not args.quick) if args.compile is None else args.compile
    args.command = 'python ' + shlex.join(['scripts/benchmark.py'] + sys.argv[1:])
    args.results = {}
    out = args.out or (None if args.quick or args.only else os.path.join(ROOT, 'docs', 'BENCHMARKS.md'))
    rep = Report()
    start = time.perf_counter()
    header(rep, args)
    targets_at = len(rep.lines)
    sections = {
        'sizes': section_sizes,
        'latency': section_latency,
        'levers': section_levers,
        'seg_scale': section_seg_scale,
        'memory': section_memory,
        'train': section_train,
    }
    failed = []
    for name in args.only or SECTIONS:
        t0 = time.perf_counter()
        try:
            sections[name](rep, args)
        except Exception:  # report it and go on with the other sections; exit non-zero at the end
            failed.append(name)
            rep.failure(f'Section `{name}`')
        print(f'[{name}: {time.perf_counter() - t0:.0f} s]', flush=True)
    rep(f'Total run time {time.perf_counter() - start:.0f} s; load average at the end: {_load()} (1 / 5 / 15 min).')
    summary = targets(args)
    print('\n'.join(summary))
    rep.lines[targets_at:targets_at] = summary + [USAGE]
    if out:
        text = '\n'.join(rep.lines) + '\n'
        if os.path.isfile(out):  # keep the rows of scripts/cuda_check.py (between its markers)
            from cuda_check import BEGIN, END

            with open(out) as f:
                old = f.read()
            if BEGIN in old and END in old:
                text += '\n' + BEGIN + old.split(BEGIN, 1)[1].split(END, 1)[0] + END + '\n'
        with open(out, 'w') as f:
            f.write(text)
        print(f'written: {out}')
    if failed:
        sys.exit(f'sections failed: {failed}')


if __name__ == '__main__':
    main()
