"""Section ``cuda``: tests, LOL-v1 training in three precisions, inference timing, CUDA vs CPU.

Not a test: it measures, prints a report and writes its rows into ``docs/BENCHMARKS.md`` (block
``cuda``, between its markers). Every network has **random weights** (nothing is downloaded); speed,
memory and CUDA-vs-CPU agreement do not depend on them. Steps of ``run``:

1. ``tests``: the CUDA-marked tests (``pytest -m cuda`` on the test files that have the mark).
2. ``train``: 50 iterations at the LOL-v1 settings (batch 16, 128x128 crops of the demo data,
   HRNet-W48 + ViT-B/16, base preset, all four losses) with ``perf.amp`` none (fp32), bf16 and
   fp16 autocast: iterations/s, peak GPU memory, and each part's share of one iteration
   (:func:`~.common.train_breakdown`).
3. ``inference``: the whole pipeline (prior, enhancer, C2F) at 600x400 and 1920x1080, in the
   option files' configuration and with ``perf`` bf16 + channels_last: latency and peak memory.
4. ``agreement``: the same random-weight priors and enhancer on CUDA and on the CPU, float32
   (TF32 off, and TF32 as torch's default): relative L2 of the prior features and logits, CLIP
   image embeddings, the enhancer's output on the same features, the whole pipeline's output.

Subcommands::

    python -m deepspg_basicsr.bench.cuda prepare          # HERE, with the package registry: wheels into .whl/
    bash scripts/cuda_check.sh --out "$OUT"               # the GPU machine (torch only): installs .whl/, runs
    python -m deepspg_basicsr.bench.cuda apply DIR/cuda_check.md   # HERE: the fetched rows into the docs
    deepspg-bench cuda --dry-run                          # CPU, tiny sizes, end to end (CI runs this)

``prepare`` downloads, for Python 3.12 on manylinux x86_64, the wheels of this project's
dependencies that a torch-only machine lacks (:data:`WHEELS`, at the versions installed here) and
builds the ones published only as source (basicsr) as pure-Python wheels; ``.whl/`` is git-ignored
and travels with ``carry``. With this workplace's device tool the GPU step is one call:
``run(command='bash scripts/cuda_check.sh --out "$OUT"', carry=['.whl'], timeout_s=600)``, then
``apply`` on the returned ``cuda_check.md``. Budget: planned to fit the 8 minutes the issue asks
for (50 + 11 iterations per precision, a few seconds of inference); not yet measured on a GPU, as
none has been lent so far (``docs/BENCHMARKS.md``).
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time

from .common import ROOT
from .core import markers, public_command, replace_block

DOC = os.path.join(ROOT, 'docs', 'BENCHMARKS.md')
WHEEL_DIR = os.path.join(ROOT, '.whl')
BLOCK = 'cuda'
BEGIN, END = markers(BLOCK)
#: Distributions a machine with torch (and the usual scientific stack) lacks, with their pure-Python
#: needs; fetched at the versions installed here. ``setuptools`` < 81: mmengine needs ``pkg_resources``.
WHEELS = (
    'basicsr',
    'mmsegmentation',
    'mmcv-lite',
    'mmengine',
    'open_clip_torch',
    'lmdb',
    'addict',
    'yapf',
    'platformdirs',
    'termcolor',
    'prettytable',
    'wcwidth',
    'ftfy',
    'future',
    'setuptools',
)
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64')
#: Full run (LOL-v1 settings, one CUDA GPU) and the dry run (CPU, tiny sizes, a few seconds each).
FULL = {
    'seg': 'HRNet-W48',
    'clip': 'ViT-B-16',
    'network': {},
    'batch': 16,
    'gt_size': 128,
    'iters': 50,
    'warmup': 5,
    'breakdown': 5,
    'sizes': [(400, 600), (1080, 1920)],
    'repeats': 5,
    'agree_size': (400, 600),
}
SETTINGS = {
    'full': FULL,
    'dry': dict(
        FULL,
        seg='HRNet-W18-small',
        clip='DeepSPG-CLIP-tiny',
        network={'num_feat': 4, 'illum_feat': 4, 'num_blocks': [1, 1, 1]},
        batch=2,
        gt_size=32,
        iters=1,
        warmup=0,
        breakdown=1,
        sizes=[(40, 60), (54, 96)],
        repeats=1,
        agree_size=(40, 60),
    ),
}
AMPS = ('none', 'bf16', 'fp16')
#: Share columns of the training table -> the ``train_breakdown`` steps they add up (a partition of
#: one iteration; a loss's column holds its forward, its prior passes and its backward to the output).
PARTS = {
    'data': ('data loading',),
    'prior fwd (input, C2F)': ('prior on the input', '  of which: C2F prior'),
    'enhancer fwd': ('enhancer forward',),
    'l_pix': ('l_pix ',),
    'l_edge': ('l_edge ',),
    'l_sem (incl. 2 prior passes)': ('l_sem',),
    'l_clip (incl. CLIP)': ('l_clip',),
    'enhancer bwd': ('enhancer backward',),
    'optimizer': ('optimizer step',),
}


# ---- prepare (here) ---------------------------------------------------------------------------
def pip_download_args(spec, dest, python_version='3.12'):
    """``pip download`` arguments for ``spec`` as a binary wheel for CPython ``python_version`` on
    manylinux x86_64 (the GPU machine), without its dependencies."""
    args = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--python-version']
    args += [python_version, '--implementation', 'cp', '-d', dest, spec]
    for plat in PLATFORMS:
        args += ['--platform', plat]
    return args


def prepare(dest=WHEEL_DIR, names=WHEELS, python_version='3.12'):
    """Fetch (or build) one wheel per name of ``names`` into ``dest``, at the version installed here."""
    from importlib.metadata import PackageNotFoundError, version

    os.makedirs(dest, exist_ok=True)
    done = []
    for name in names:
        try:
            spec = f'{name}=={version(name)}'
        except PackageNotFoundError:
            sys.exit(f'prepare: {name} is not installed here; install the project first (pip install -e .)')
        before = set(os.listdir(dest))
        proc = subprocess.run(pip_download_args(spec, dest, python_version), capture_output=True, text=True)
        if proc.returncode != 0:  # published as source only: build a wheel here (pure Python ones only)
            proc = subprocess.run(
                [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-w', dest, spec],
                capture_output=True,
                text=True,
            )
        new = sorted(set(os.listdir(dest)) - before) or [f for f in os.listdir(dest) if _wheel_name(f) == _norm(name)]
        if proc.returncode != 0 or not new:
            sys.exit(f'prepare: no wheel for {spec}:\n{proc.stderr[-2000:]}')
        bad = [f for f in new if f.endswith('.whl') and not _fits(f, python_version)]
        if bad:
            sys.exit(f'prepare: {bad} would not install on CPython {python_version} manylinux x86_64')
        done += new
        print(f'{spec}: {", ".join(new)}', flush=True)
    stale = [f for f in os.listdir(dest) if _wheel_name(f) not in {_norm(n) for n in names}]
    size = sum(os.path.getsize(os.path.join(dest, f)) for f in os.listdir(dest)) / 2**20
    print(f'{len(os.listdir(dest))} wheels in {dest}, {size:.1f} MiB' + (f'; not ours: {stale}' if stale else ''))
    return done


def _norm(name):
    return re.sub(r'[-_.]+', '_', name).lower()


def _wheel_name(filename):
    return _norm(filename.split('-')[0])


def _fits(filename, python_version):
    """Whether a wheel's tags admit CPython ``python_version`` on manylinux x86_64."""
    python, abi, plat = filename[: -len('.whl')].split('-')[-3:]
    cp = 'cp' + python_version.replace('.', '')
    py_ok = any(p in (cp, 'py3', 'py2.py3') or p == 'py' + python_version[0] for p in python.split('.'))
    plat_ok = plat == 'any' or any(
        p.startswith(('manylinux', 'linux')) and p.endswith('x86_64') for p in plat.split('.')
    )
    return py_ok and plat_ok and abi in ('none', cp, 'abi3')


# ---- run ----------------------------------------------------------------------------------------
def run_tests(rep, dry):
    """The CUDA-marked tests, in a subprocess; returns the pytest summary line."""
    files = sorted(f for f in glob.glob(os.path.join(ROOT, 'tests', 'test_*.py')) if 'mark.cuda' in open(f).read())
    cmd = [sys.executable, '-m', 'pytest', '-q', '-m', 'cuda', '-p', 'no:cacheprovider', *files]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip('= ') if lines else proc.stderr[-500:]
    ok = proc.returncode in (0, 5)  # 5: nothing collected
    rep('### CUDA-marked tests')
    rep()
    rep(f'`{shlex.join(["python", "-m", "pytest", "-q", "-m", "cuda"] + [os.path.relpath(f, ROOT) for f in files])}`: ')
    rep(f'**{summary}** ({time.perf_counter() - start:.0f} s{", on the CPU they skip" if dry else ""})')
    rep()
    if not ok:
        print(proc.stdout[-6000:], proc.stderr[-3000:], sep='\n')
    return {'summary': summary, 'returncode': proc.returncode, 'ok': ok}


def _peak_mib(device):
    import torch

    from .common import peak_rss_mib

    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()


def _reset_peak(device):
    import torch

    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _shares(parts):
    """Column -> share of the summed median step times (see :data:`PARTS`)."""
    import statistics

    steps = {k: statistics.median(v) for k, v in parts.items()}
    c2f = steps.get('  of which: C2F prior on the coarse result', 0.0)
    total = sum(v for k, v in steps.items() if not k.startswith(' '))
    out = {}
    for col, prefixes in PARTS.items():
        out[col] = sum(v for k, v in steps.items() if k.startswith(prefixes))
    out['enhancer fwd'] -= c2f  # the C2F prior pass is counted with the prior
    return {k: v / total for k, v in out.items()}, total


def run_train(rep, s, device):
    """50 iterations per precision at the given settings; returns the rows as dicts."""
    import torch

    from .common import build, iteration, model_options, sync, train_breakdown, training_loader

    rep(f'### Training, LOL-v1 settings: {s["seg"]} + {s["clip"]}, batch {s["batch"]}, {s["gt_size"]}x{s["gt_size"]}')
    rep()
    batches = training_loader(s['gt_size'], s['batch'], s['data_root'], torch.Generator().manual_seed(0))
    rows, results = [], {}
    for amp in AMPS:
        if amp == 'fp16' and device.type != 'cuda':
            results[amp] = {'skipped': 'fp16 autocast needs CUDA (perf.amp)'}
            rows.append([amp, 'skipped: needs CUDA', '', ''] + [''] * len(PARTS))
            continue
        if amp == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
            results[amp] = {'skipped': 'no bf16 on this GPU'}
            rows.append([amp, 'skipped: no bf16 on this GPU', '', ''] + [''] * len(PARTS))
            continue
        extra = {'perf': {'amp': amp}, 'network_g': s['network']}
        model = build(model_options(s['seg'], s['clip'], extra=extra, is_train=True), device)
        step = iteration(model, batches)
        for _ in range(s['warmup']):
            step()
        _reset_peak(device)
        sync(device)
        start = time.perf_counter()
        for _ in range(s['iters']):
            step()
        sync(device)
        seconds = time.perf_counter() - start
        peak = _peak_mib(device)
        shares, step_sum = _shares(train_breakdown(model, batches, s['breakdown']))
        losses = {k: float(v) for k, v in model.get_current_log().items()}
        results[amp] = {'it_s': s['iters'] / seconds, 'peak_mib': peak, 'shares': shares, 'last_losses': losses}
        rows.append(
            [amp, f'{s["iters"] / seconds:.2f}', f'{peak:.0f}', f'{step_sum:.3f}'] + [f'{shares[c]:.0%}' for c in PARTS]
        )
        del model, step
        _reset_peak(device)
    mem = 'peak GPU memory (MiB)' if device.type == 'cuda' else 'peak RSS (MiB)'
    rep.table(['amp', f'it/s ({s["iters"]} iterations)', mem, 'sum of the steps (s)'] + list(PARTS), rows)
    return results


def run_inference(rep, s, device):
    """The whole pipeline at each size, default and ``perf`` configurations."""
    from .common import CONFIGS, build, model_options, run_pipeline, sync, test_image
    from .core import rounds

    rep('### Inference, whole pipeline (prior + enhancer + C2F), base preset, `inference_mode`')
    rep()
    configs = {k: CONFIGS[k] for k in ('default', 'perf')}
    models = {
        k: build(model_options(s['seg'], extra=dict(v, network_g=s['network'])), device) for k, v in configs.items()
    }
    rows, results = [], {}
    for h, w in s['sizes']:
        x = test_image(h, w).to(device)
        peaks = {}
        for name, model in models.items():
            _reset_peak(device)
            run_pipeline(model, x)
            sync(device)
            peaks[name] = _peak_mib(device)
        fns = {k: (lambda m=m, x=x: run_pipeline(m, x)) for k, m in models.items()}
        times = rounds(fns, s['repeats'], device=device)
        for name in times:
            results[f'{w}x{h} {name}'] = {'seconds': times.median(name), 'peak_mib': peaks[name]}
            rows.append([f'{w}x{h}', f'`{name}`', times.fmt(name), f'{peaks[name]:.0f}'])
    mem = 'peak GPU memory (MiB)' if device.type == 'cuda' else 'peak RSS (MiB)'
    rep.table(['size', 'configuration', 'latency', mem], rows)
    return results


def _rel(a, b):
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def run_agreement(rep, s, device):
    """The same random weights on ``device`` and on the CPU: relative L2 of each part's output."""
    from deepspg_basicsr.priors import build_clip_prior

    import torch

    from .common import build, model_options, psnr, run_pipeline, test_image

    cpu = torch.device('cpu')
    opt = model_options(s['seg'], extra={'network_g': s['network']})
    ref, dev = build(opt, cpu), build(opt, device)
    for a, b in zip(ref.net_g.state_dict().values(), dev.net_g.state_dict().values()):
        assert torch.equal(a, b.cpu()), 'the enhancer weights differ between the two builds'
    for a, b in zip(ref.seg_prior.state_dict().values(), dev.seg_prior.state_dict().values()):
        assert torch.equal(a, b.cpu()), 'the prior weights differ between the two builds'
    clip_opt = {'clip_model': s['clip'], 'clip_pretrained': None}
    clip_ref, clip_dev = build_clip_prior(clip_opt), build_clip_prior(clip_opt).to(device)
    h, w = s['agree_size']
    x = test_image(h, w)
    xd = x.to(device)
    results, rows = {}, []
    modes = [('fp32, TF32 off', False), ('fp32, TF32 on (convolutions and matmuls)', True)]
    if device.type != 'cuda':
        modes = modes[:1]
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        with torch.inference_mode():
            feats_ref = ref.sem_features(x)
            logits_ref = ref.seg_prior(x)['logits']
            emb_ref = clip_ref.encode_image(x)
            enh_ref = ref.net_g.enhance(x, feats_ref)['out']
            out_ref = run_pipeline(ref, x)
            for label, tf32 in modes:
                torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
                feats = dev.sem_features(xd)
                r = {
                    'prior features (rel. L2, branches 0 / 1 / 2)': [_rel(a, b) for a, b in zip(feats, feats_ref)],
                    'prior logits (rel. L2)': _rel(dev.seg_prior(xd)['logits'], logits_ref),
                    'CLIP image embedding (rel. L2)': _rel(clip_dev.encode_image(xd), emb_ref),
                    'enhancer on the CPU features (rel. L2)': _rel(
                        dev.net_g.enhance(xd, [f.to(device) for f in feats_ref])['out'], enh_ref
                    ),
                    'whole pipeline (rel. L2)': _rel(run_pipeline(dev, xd), out_ref),
                }
                r['whole pipeline, PSNR to the CPU output (dB)'] = psnr(run_pipeline(dev, xd).cpu(), out_ref)
                results[label] = r
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    rep(f'### {device.type.upper()} vs CPU, same random weights, a {w}x{h} dim input (`bench.common.test_image`)')
    rep()
    for what in next(iter(results.values())):
        cells = []
        for r in results.values():
            v = r[what]
            cells.append(' / '.join(f'{e:.1e}' for e in v) if isinstance(v, list) else _num(v))
        rows.append([what] + cells)
    rep.table(['output'] + list(results), rows)
    strict = results[modes[0][0]]
    worst = max([*strict['prior features (rel. L2, branches 0 / 1 / 2)'], strict['prior logits (rel. L2)']])
    worst = max(worst, strict['CLIP image embedding (rel. L2)'], strict['enhancer on the CPU features (rel. L2)'])
    ok = worst <= 1e-3 and strict['whole pipeline, PSNR to the CPU output (dB)'] >= 50
    rep(
        f'Verdict (TF32 off): worst relative L2 {worst:.1e} (tolerance 1e-3), whole-pipeline PSNR '
        f'{_num(strict["whole pipeline, PSNR to the CPU output (dB)"])} dB (tolerance >= 50): '
        f'**{"agree" if ok else "DISAGREE"}**.'
    )
    rep()
    results['ok'] = ok
    return results


def _num(v):
    return 'inf' if v == float('inf') else (f'{v:.1f}' if v > 1 else f'{v:.1e}')


def replace_section(text, section):
    """``text`` with the lines between :data:`BEGIN` and :data:`END` replaced by ``section``
    (the markers appended at the end when absent)."""
    return replace_block(text, BLOCK, section, append=True)[0]


def apply(section_file, doc=DOC):
    """Write the section of a finished run (``cuda_check.md``) into ``doc``."""
    with open(section_file) as f:
        section = f.read()
    with open(doc) as f:
        text = f.read()
    with open(doc, 'w') as f:
        f.write(replace_section(text, section))
    print(f'written: {doc}')


def check(args):
    """The check (``run``): its steps, the Markdown and JSON under ``args.out``, the rows into ``args.doc``."""
    import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

    # isort: split
    import logging

    from deepspg_basicsr.data.demo_data import make_demo_data

    import torch

    from .core import Report

    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        sys.exit('cuda_check: no CUDA device here; `--dry-run` rehearses the whole run on the CPU with tiny sizes')
    device = torch.device('cpu' if dry else 'cuda')
    s = dict(SETTINGS['dry' if dry else 'full'])
    if args.iters:
        s['iters'] = args.iters
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger('basicsr').setLevel(logging.ERROR)  # the random-weight warnings are expected
    start = time.perf_counter()
    data = tempfile.mkdtemp(prefix='cuda_check_demo_')
    make_demo_data(data)
    s['data_root'] = os.path.join(data, 'LOL-v1')

    rep = Report('cuda', argv=[], quiet=False)
    rep.block(BLOCK, provenance=False)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    rep(f'## CUDA check{" (DRY RUN on the CPU: tiny sizes, not measurements)" if dry else ""}')
    rep()
    rep(
        f'Written by `{args.command}` ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC). '
        f'GPU: {gpu}; {platform.machine()}, {os.cpu_count()} logical cores; python {platform.python_version()}, '
        f'torch {torch.__version__} (CUDA {torch.version.cuda}). **All networks have random weights** '
        '(HRNet and CLIP priors included); speed, memory and agreement do not depend on them.'
    )
    rep()
    results = {'device': gpu, 'dry_run': dry, 'settings': {k: v for k, v in s.items() if k != 'data_root'}}
    steps = args.only or ('tests', 'train', 'inference', 'agreement')
    failed = []
    for name in steps:
        t0 = time.perf_counter()
        try:
            if name == 'tests':
                results[name] = run_tests(rep, dry)
                if not results[name]['ok']:
                    failed.append(name)
            elif name == 'train':
                results[name] = run_train(rep, s, device)
            elif name == 'inference':
                results[name] = run_inference(rep, s, device)
            else:
                results[name] = run_agreement(rep, s, device)
                if not results[name]['ok']:
                    failed.append(name)
        except Exception:  # report it and go on; exit non-zero at the end
            failed.append(name)
            rep.failure(f'Step `{name}`')
        print(f'[{name}: {time.perf_counter() - t0:.0f} s]', flush=True)
    rep(f'Total {time.perf_counter() - start:.0f} s.' + (f' Failed: {failed}.' if failed else ''))
    section = rep.texts()[BLOCK]
    results['failed'] = failed
    results['seconds'] = time.perf_counter() - start
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, 'cuda_check.md'), 'w') as f:
            f.write(section + '\n')
        with open(os.path.join(args.out, 'cuda_check.json'), 'w') as f:
            json.dump(results, f, indent=2, default=str)
    doc = args.doc if args.doc is not None else (None if dry else DOC)
    if doc:
        apply_text(doc, section)
    if failed:
        sys.exit(f'cuda_check: failed steps {failed}')
    return section


def apply_text(doc, section):
    with open(doc) as f:
        text = f.read()
    with open(doc, 'w') as f:
        f.write(replace_section(text, section))
    print(f'written: {doc}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd')
    p = sub.add_parser('prepare', help='HERE: wheels of the missing dependencies into .whl/')
    p.add_argument('--dest', default=WHEEL_DIR)
    p.add_argument('--python-version', default='3.12')
    p = sub.add_parser('apply', help="HERE: put a run's cuda_check.md into docs/BENCHMARKS.md")
    p.add_argument('section')
    p.add_argument('--doc', default=DOC)
    p = sub.add_parser('run', help='the check (default)')
    p.add_argument('--dry-run', action='store_true', help='CPU, tiny sizes: rehearse every step (CI)')
    p.add_argument('--out', help='write cuda_check.md and cuda_check.json here (e.g. $OUT)')
    p.add_argument('--doc', help='markdown file to write the rows into (default: docs/BENCHMARKS.md; dry run: none)')
    p.add_argument('--only', nargs='+', choices=('tests', 'train', 'inference', 'agreement'))
    p.add_argument('--iters', type=int, help='training iterations per precision (default 50; dry run 1)')
    p.add_argument('--threads', type=int, help='torch CPU threads')
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ('prepare', 'apply', 'run', '-h', '--help'):
        argv = ['run'] + argv
    args = parser.parse_args(argv)
    if args.cmd == 'prepare':
        prepare(args.dest, python_version=args.python_version)
    elif args.cmd == 'apply':
        apply(args.section, args.doc)
    else:
        args.command = public_command(argv, prefix='python -m deepspg_basicsr.bench.cuda')
        check(args)


def add_arguments(parser):
    parser.add_argument('--dry-run', action='store_true', help='CPU, tiny sizes: rehearse every step (CI)')
    parser.add_argument('--out-dir', help='write cuda_check.md and cuda_check.json here (e.g. $OUT)')
    parser.add_argument(
        '--doc', help='markdown file to write the rows into (default: docs/BENCHMARKS.md; dry run: none)'
    )
    parser.add_argument('--only', nargs='+', choices=('tests', 'train', 'inference', 'agreement'))
    parser.add_argument('--iters', type=int, help='training iterations per precision (default 50; dry run 1)')


def run(rep, args):
    """The section: :func:`check` (``--quick`` is the dry run); its Markdown goes into ``rep`` too."""
    args.dry_run = args.dry_run or args.quick
    args.out = args.out_dir
    args.command = rep.command
    section = check(args)
    rep.block(BLOCK, provenance=False)
    for line in section.splitlines():
        rep(line)
    rep.data['section'] = section


if __name__ == '__main__':
    main()
