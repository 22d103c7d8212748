"""Section ``deploy``: torch eager, ONNX Runtime fp32 / int8 and the output-changing levers.

Blocks ``deploy`` (docs/BENCHMARKS.md, which says how it measures) and ``deploy-summary``
(docs/DEPLOY.md); the figure of latency against output change (``--plot``). **Random weights.**
"""

import copy
import gc
import math
import os
import statistics

import torch

from ..deploy.ort_backend import OrtSession
from ..deploy.pipeline import DeepSPGPipeline
from ..deploy.quantize import quantize_int8
from .common import (
    PERF,
    ROOT,
    Forward,
    build,
    demo_images,
    export_once,
    load_peer,
    made_once,
    model_options,
    parse_size,
    psnr,
    unfolded_pipeline,
)
from .common import SEG_PRIORS as SEG
from .core import rounds

CPU = torch.device('cpu')

#: Row names shared by the report and the targets.
HRNET = 'HRNet forward (fp32, torch)'
REF = 'torch eager, default (pruned prior, BN folded, channels-last, SEM project-first)'
ORT_FP32 = 'ONNX Runtime fp32, default'
PRIOR_PASS = 'ONNX Runtime fp32, one prior pass alone (HRNet branches 0-2)'
PEER = 'Retinexformer LOL-v1 (torch fp32, peer network)'
PEER_CL = 'Retinexformer LOL-v1 (torch fp32, channels_last)'


#: The ONNX Runtime rows: name -> the exported pipeline's (seg_scale, c2f_seg_scale, C2F on, int8).
ORT_ROWS = {
    ORT_FP32: (1.0, None, True, False),
    'ONNX Runtime fp32, seg_scale 0.5 (both passes)': (0.5, 0.5, True, False),
    'ONNX Runtime int8 (static QDQ, all Conv), default': (1.0, None, True, True),
    'ONNX Runtime int8, seg_scale 0.5 (both passes)': (0.5, 0.5, True, True),
    'ONNX Runtime int8, seg_scale 0.5, C2F off (one pass)': (0.5, 0.5, False, True),
}


def ort_export(work, tag, model, net, seg_scale, c2f_seg_scale, c2f, int8):
    """The pipeline of ``model``/``net`` exported (and int8-quantised) once into ``work``; its path."""
    one = copy.deepcopy(net)
    one.c2f = c2f
    pipe = DeepSPGPipeline(one, model.seg_prior, model.seg_branches, seg_scale=seg_scale, c2f_seg_scale=c2f_seg_scale)
    path = export_once(pipe.eval(), os.path.join(work, f'{tag}_{seg_scale}_{c2f_seg_scale}_{int(c2f)}.onnx'))
    if not int8:
        return path
    int8_path = path[: -len('.onnx')] + '_int8.onnx'  # calibrated on 4 demo images at 300x200
    return made_once(int8_path, lambda q: quantize_int8(path, q, demo_images(300, 200, 4)), 'quantised')


class LazyOrt:
    """An ONNX Runtime session made on first use (:meth:`prepare`, untimed) and dropped by
    :meth:`release` (with their memory arenas, a dozen sessions at 1920x1080 fill 24 GiB)."""

    def __init__(self, path, threads):
        self.path, self.threads, self.session = path, threads, None

    def prepare(self):
        if self.session is None:
            self.session = OrtSession(self.path, threads=self.threads, device='cpu')

    def release(self):
        self.session = None

    def __call__(self, x):
        self.prepare()
        return self.session.run(x)[0]


def release_all(configs):
    """Drop the ONNX Runtime sessions (:class:`LazyOrt`) among the rows ``configs``."""
    for fn, _, _ in configs.values():
        getattr(fn, 'release', lambda: None)()


def pipeline_configs(args, work, tag, model, net, perf_model):
    """The pipeline rows (reference, torch levers, ONNX Runtime fp32 and levers) of ``model``/``net``
    (``perf_model``: the same weights with ``perf`` :data:`~.common.PERF`): name -> (callable x -> output
    (1, 3, H, W) unclamped, kind, output-preserving?)."""

    def scaled(m, first, second, c2f=True):  # DeepSPGModel.enhance with prior.seg_scale / c2f_seg_scale
        bare = m.get_bare_model(m.net_g)

        def run(x):
            post = (lambda c: m.sem_features(c, second)) if c2f else None
            return m._run_net(bare, x, m.sem_features(x, first), prior=post)

        return run

    perf_net = perf_model.get_bare_model(perf_model.net_g).eval()
    levers = {
        'torch, bf16 autocast + channels_last (perf.amp)': lambda x: perf_model.enhance(perf_net, x),
        'torch, bf16 + channels_last, seg_scale 0.5 (both passes)': scaled(perf_model, 0.5, 0.5),
        'torch, bf16 + channels_last, seg_scale 0.5, C2F off (one pass)': scaled(perf_model, 0.5, 0.5, c2f=False),
        'torch, seg_scale 0.5, c2f_seg_scale 1': scaled(model, 0.5, 1.0),
        'torch, seg_scale 0.5 (both prior passes)': scaled(model, 0.5, 0.5),
        'torch, C2F off (one pass)': lambda x: model.enhance(net, x, c2f=False),
    }
    configs = {REF: (lambda x: model.enhance(net, x), 'reference', True)}
    configs.update({name: (fn, 'lever', False) for name, fn in levers.items()})
    for name, spec in ORT_ROWS.items() if not args.quick else [(ORT_FP32, ORT_ROWS[ORT_FP32])]:
        session = LazyOrt(ort_export(work, tag, model, net, *spec), args.threads)
        configs[name] = (session, 'output-preserving', True) if name == ORT_FP32 else (session, 'lever', False)
    return configs


def build_configs(args, work):
    """The latency section's rows (random weights, ``args.seg``): the denominator, the pipeline rows,
    the prior-pass floor and the peer network."""
    model = build(model_options(args.seg), CPU)  # perf defaults: prior BN folded, channels-last (CPU)
    net = model.get_bare_model(model.net_g).eval()
    before, plain = unfolded_pipeline(args.seg, CPU)  # before issue 10, the same random weights
    perf_model = build(model_options(args.seg, extra={'perf': PERF}), CPU)

    configs = {HRNET: (lambda x: plain.seg_prior(x)['logits'], 'denominator', None)}
    if args.retinexformer:  # early in the round: never right after an ONNX Runtime session's run
        peer = load_peer(args.retinexformer)
        configs[PEER] = (peer, 'peer', None)
        peer_cl = copy.deepcopy(peer).to(memory_format=torch.channels_last)
        configs[PEER_CL] = (lambda x: peer_cl(x.contiguous(memory_format=torch.channels_last)), 'peer', None)
    configs['torch eager, before (full HRNet backbone per prior pass, BatchNorm, NCHW)'] = (before, 'reference', True)
    configs.update(pipeline_configs(args, work, args.seg, model, net, perf_model))
    if args.quick:  # one export (the pipeline) is enough to check the plumbing
        return configs
    pass_ = Forward(DeepSPGPipeline(net, model.seg_prior, model.seg_branches), lambda p, x: tuple(p.features(x, 1.0)))
    names = [f'f{b}' for b in model.seg_branches]
    path = export_once(pass_.eval(), os.path.join(work, f'{args.seg}_prior_pass.onnx'), output_names=names)
    configs[PRIOR_PASS] = (LazyOrt(path, args.threads), 'floor', None)
    return configs


def trained_configs(args, work):
    """The output-change section's rows for a trained option file + checkpoint (``--trained``)."""
    from deepspg_basicsr.inference import DeepSPGEnhancer, load_option_file

    opt = load_option_file(args.trained[0])
    perf_opt = dict(opt, perf=dict(opt.get('perf') or {}, **PERF))
    fp32, perf = (DeepSPGEnhancer(o, weights=args.trained[1], device='cpu') for o in (opt, perf_opt))
    return pipeline_configs(args, work, 'trained', fp32.model, fp32.net.eval(), perf.model)


def measure(configs, images, repeats, warmup=True, release=False):
    """Timings of interleaved rounds on images[0] (:func:`~.core.rounds`, one warm-up each unless not
    ``warmup``; the last round's outputs kept) and the outputs on the other images. ``release``:
    drop each ONNX Runtime session after its last use (its memory arena with it)."""
    x = images[0]
    keep = [k for k, (_, _, preserving) in configs.items() if preserving is not None]
    with torch.inference_mode():
        fns = {name: (lambda fn=fn: fn(x)) for name, (fn, _, _) in configs.items()}
        prepare = lambda name: getattr(configs[name][0], 'prepare', lambda: None)()  # noqa: E731
        times = rounds(fns, repeats, warmup=int(warmup), before_each=prepare, keep_outputs=True)
        outputs = {k: [times.outputs[k].float().clamp(0, 1)] for k in keep}
        times.outputs = {}
        if release and len(images) == 1:
            release_all(configs)
        for name in outputs:
            outputs[name] += [configs[name][0](img).float().clamp(0, 1) for img in images[1:]]
            if release:
                release_all({name: configs[name]})
    return times, outputs


#: Rows not timed at sizes above 1 MPixel (the slowest; minutes each there on a 2-core CPU).
SMALL_ONLY_ROWS = ('torch eager, before (full HRNet backbone per prior pass, BatchNorm, NCHW)',)
#: An output-changing configuration meets the second target when its PSNR against the ground truth
#: stays within this many dB of the fp32 output's.
TARGET_DB = 0.3


def targets(results, levers, trained_changes=None):
    """The issue's two targets at 600x400 (or the first size): rows of (target, measured, verdict). The
    second's candidates are the rows ``levers``, their PSNR changes from ``trained_changes`` where given
    (a trained model), else from the random-weight rows."""
    size = (600, 400) if (600, 400) in results else next(iter(results))
    times, changes, _ = results[size]
    ratio = {k: times.ratio(k, HRNET) for k in times}
    ort, floor = ratio[ORT_FP32], 2 * ratio.get(PRIOR_PASS, math.nan)
    target = f'ONNX Runtime fp32, default whole pipeline <= 1.0x one fp32 torch HRNet-W48 forward ({size[0]}x{size[1]})'
    rows = [(target, f'{ort:.2f}x', 'met' if ort <= 1.0 else 'missed')]
    if PRIOR_PASS in ratio:
        target = 'floor of any exact (fp32, full-resolution prior) pipeline: two ONNX Runtime prior passes alone'
        verdict = 'above 1.0x: target 1 cannot be met without changing the output' if floor > 1 else ''
        rows.append((target, f'{floor:.2f}x', verdict))
    judged = trained_changes if trained_changes is not None else changes
    basis = 'the trained model' if trained_changes is not None else 'random weights'
    readings = (
        (f'within ±{TARGET_DB} dB', lambda d: abs(d) <= TARGET_DB),
        (f'no more than {TARGET_DB} dB worse (a gain allowed)', lambda d: d >= -TARGET_DB),
    )
    for reading, keep in readings:
        ok = [(ratio[k], k) for k, ch in judged.items() if k in levers and k in ratio and keep(ch[3])]
        if ok:
            best, name = min(ok)
            target = f'best output-changing configuration whose PSNR to the ground truth ({basis}) stays {reading}'
            measured = f'{name}: {best:.2f}x (ΔPSNR {judged[name][3]:+.2f} dB)'
            rows.append((f"{target} of the fp32 output's, <= 0.5x", measured, 'met' if best <= 0.5 else 'missed'))
    return rows


def report(rep, args, results, levers, trained=None):
    """The ``deploy`` block: one table per size, the trained model's output changes, the targets (``levers``:
    the rows that change the output)."""
    rep.note(
        f'Random weights, base preset, {args.seg}; sizes above 1 MPixel leave out {len(SMALL_ONLY_ROWS)} slow row(s) '
        'and have no separate warm-up (the models were warmed at the first size); ONNX opset 18.'
    )
    change = ['max abs diff', 'mean abs diff', 'PSNR vs fp32 (dB)', 'ΔPSNR(GT) (dB)']

    def cells(ch):
        return ['', '', '', ''] if ch is None else [f'{ch[0]:.2e}', f'{ch[1]:.2e}', f'{ch[2]:.1f}', f'{ch[3]:+.3f}']

    for (w, h), (times, changes, n_img) in results.items():
        rep.note(f'### {w}x{h} (output change over {n_img} image{"s" if n_img > 1 else ""})')
        rows = [[n, times.fmt(n), times.fmt_ratio(n, HRNET), *cells(changes.get(n))] for n in times]
        rep.table(['configuration', 'latency', 'vs HRNet forward', *change], rows)
    if trained is not None:
        (w, h), n_img, changes, ref_gt = trained
        rep.note(f'### Output change on a trained model ({w}x{h}, {n_img} demo test images)')
        rep.note(
            f'`--trained {" ".join(args.trained)}`: the same levers on that option file and checkpoint (its own prior, '
            f'trained enhancer); PSNR of its fp32 output against the ground truth {ref_gt:.2f} dB.'
        )
        rep.table(['configuration', *change], [[n, *cells(ch)] for n, ch in changes.items()])
    rows = targets(results, levers, None if trained is None else trained[2])
    if rows:
        rep.note('Targets:')
        rep.table(['target', 'measured', ''], rows)


def plot(results, path):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7.5 * len(results), 5.2), squeeze=False)
    order = list(dict.fromkeys(k for _, changes, _ in results.values() for k in changes))  # one style per row
    for ax, ((w, h), (times, changes, _)) in zip(axes[0], results.items()):
        for name, ch in changes.items():
            i, ratio, y = order.index(name), times.ratio(name, HRNET), min(ch[2], 120.0)
            ax.scatter(ratio, y, s=40, marker='os^vD<>ph*'[i % 10], color=plt.cm.tab20(i % 20), label=name)
        for name, style in ((PEER, ':'), (PRIOR_PASS, '-.')):
            if name in times:
                ax.axvline(times.ratio(name, HRNET), color='k', lw=0.8, ls=style, label=name)
        ax.axvline(1.0, color='grey', lw=0.8, ls='--', label='one HRNet-W48 forward (target 1)')
        ax.axvline(0.5, color='red', lw=0.8, ls='--', label='target 2 (0.5x)')
        ax.set_xlabel('latency / one fp32 torch HRNet-W48 forward')
        ax.set_ylabel('PSNR vs fp32 torch output (dB; 120 = identical)')
        ax.set_title(f'{w}x{h}')
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc='lower right')
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


def output_changes(outputs, gts):
    """name -> (max abs diff, mean abs diff, PSNR vs the reference output, PSNR(GT) change), and the
    reference output's PSNR against the ground truth."""
    ref = outputs[REF]
    ref_gt = statistics.mean(psnr(r, g) for r, g in zip(ref, gts))
    changes = {}
    for name, outs in outputs.items():
        diffs = [(o - r).abs() for o, r in zip(outs, ref)]
        changes[name] = (
            max(float(d.max()) for d in diffs),
            statistics.mean(float(d.mean()) for d in diffs),
            psnr(torch.cat([o.flatten() for o in outs]), torch.cat([r.flatten() for r in ref])),
            statistics.mean(psnr(o, g) for o, g in zip(outs, gts)) - ref_gt,
        )
    return changes, ref_gt


def add_arguments(parser):
    parser.add_argument('--seg', default='HRNet-W48', choices=sorted(SEG))
    parser.add_argument('--sizes', nargs='+', default=['600x400', '1920x1080'])
    parser.add_argument('--size-repeats', nargs='+', type=int, default=[3, 1], help='timed rounds per size')
    parser.add_argument('--images', nargs='+', type=int, default=[4, 1], help='images for the output change per size')
    parser.add_argument('--work', default='/tmp/deepspg_bench_deploy', help='exported models (reused)')
    parser.add_argument('--plot', default=os.path.join(ROOT, 'docs/figures/deploy_latency_vs_change.png'))
    parser.add_argument('--retinexformer', metavar='FILE', help="Retinexformer's RetinexFormer_arch.py: its row")
    parser.add_argument('--trained', nargs=2, metavar=('OPT', 'WEIGHTS'), help='output changes of a trained model too')


def run(rep, args):
    if args.quick:
        args.seg, args.sizes, args.size_repeats, args.images = 'HRNet-W18-small', ['96x64'], [2], [2]
        args.work = os.path.join(args.work, 'quick')
    elif args.repeats and args.repeats != 3:
        args.size_repeats = [args.repeats] + args.size_repeats[1:]
    args.threads = args.threads or torch.get_num_threads()
    os.makedirs(args.work, exist_ok=True)
    configs = build_configs(args, args.work)
    levers = {k for k, (_, _, preserving) in configs.items() if preserving is False}
    sizes = [parse_size(s) for s in args.sizes]
    images = {size: demo_images(*size, max(args.images)) for size in sizes}
    truths = {size: demo_images(*size, max(args.images), 'high') for size in sizes}
    results = {}
    for i, (size, repeats, n_img) in enumerate(zip(sizes, args.size_repeats, args.images)):
        large = size[0] * size[1] > 1_000_000
        if large:  # free the smaller sizes' ONNX Runtime arenas first (a dozen of them fill 24 GiB)
            release_all(configs)
            gc.collect()
        rows = {k: v for k, v in configs.items() if not (large and k in SMALL_ONLY_ROWS)}
        times, outputs = measure(rows, images[size][:n_img], repeats, warmup=i == 0, release=large)
        changes, ref_gt = output_changes(outputs, truths[size][:n_img])
        results[size] = (times, changes, n_img)
    trained = None
    if args.trained:
        del configs, rows  # the W48 sessions' memory
        gc.collect()
        size, n_img = sizes[0], max(args.images)
        rows = trained_configs(args, args.work)
        _, outputs = measure(rows, images[size][:n_img], 1, warmup=False)
        changes, ref_gt = output_changes(outputs, truths[size][:n_img])
        trained = (size, n_img, changes, ref_gt)
    rep.block('deploy')
    report(rep, args, results, levers, trained)
    rep.block('deploy-summary')
    summary(rep, results)
    rep.data['sizes'] = {f'{w}x{h}': {'times': dict(t), 'changes': c} for (w, h), (t, c, _) in results.items()}
    if trained is not None:
        rep.data['trained'] = {'size': list(trained[0]), 'changes': trained[2], 'psnr_gt_fp32': trained[3]}
    if args.plot and not args.quick:
        plot(results, args.plot)


def summary(rep, results):
    """The short table of docs/DEPLOY.md: the default pipeline and the main levers at the first size."""
    size = (600, 400) if (600, 400) in results else next(iter(results))
    times, changes, _ = results[size]
    int8 = [name for name, (*_, quantised) in ORT_ROWS.items() if quantised]
    keep = [REF, ORT_FP32, 'torch, bf16 autocast + channels_last (perf.amp)', *int8, PEER_CL]
    peer = lambda n: times.fmt_ratio(n, PEER_CL) if PEER_CL in times and n != PEER_CL else ''  # noqa: E731
    psnr_cell = lambda n: '' if changes.get(n) is None else f'{changes[n][2]:.1f}'  # noqa: E731
    rows = [[n, times.fmt(n), times.fmt_ratio(n, HRNET), peer(n), psnr_cell(n)] for n in keep if n in times]
    rep.note(f"{size[0]}x{size[1]}, random weights, the `deploy` section's rounds (docs/BENCHMARKS.md has every row).")
    rep.table(
        ['configuration', 'latency', 'vs one HRNet forward', 'vs Retinexformer channels-last', 'PSNR vs fp32 (dB)'],
        rows,
    )
