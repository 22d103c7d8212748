"""The CUDA check (a hardware check, not a benchmark): does the project run, train and agree on a GPU?

Steps of ``run`` (rows into ``docs/BENCHMARKS.md``, block ``cuda``, between its markers; every network
has **random weights**, nothing is downloaded):

1. ``tests``: the CUDA-marked tests (``pytest -m cuda`` on the test files that have the mark).
2. ``train``: a few iterations at the LOL-v1 settings (batch 16, 128x128 crops of the demo data,
   HRNet-W48 + ViT-B/16, all four losses) with ``perf.amp`` none, bf16 and fp16: iterations/s,
   peak memory, the losses finite.
3. ``inference``: :class:`~deepspg_basicsr.inference.DeepSPGEnhancer` (the whole pipeline) at 600x400
   and 1920x1080, in the option files' configuration and with ``perf`` (bf16 + channels-last).
4. ``agreement``: the same random weights on CUDA and on the CPU (fp32, TF32 off): relative L2 of the
   prior's features and logits and of the enhanced image.

Usage::

    python -m deepspg_basicsr.cuda_check prepare               # HERE, with the package registry: wheels into .whl/
    bash scripts/cuda_check.sh --out "$OUT"                    # the GPU machine (torch only): installs .whl/, runs
    python -m deepspg_basicsr.cuda_check apply DIR/cuda_check.md   # HERE: the fetched rows into the docs
    python -m deepspg_basicsr.cuda_check run --dry-run         # CPU, tiny sizes, end to end (CI runs this)

``prepare`` downloads, for Python 3.12 on manylinux x86_64, the wheels of this project's dependencies
that a torch-only machine lacks (:data:`WHEELS`, at the versions installed here) and builds the ones
published only as source (basicsr) as pure-Python wheels; ``.whl/`` is git-ignored and travels with
the device tool's ``carry``.
"""

import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time

from .bench.core import Report, markers, public_command, replace_block, rounds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'BENCHMARKS.md')
WHEEL_DIR = os.path.join(ROOT, '.whl')
BLOCK = 'cuda'
BEGIN, END = markers(BLOCK)
#: Distributions a machine with torch lacks (``setuptools`` < 81: mmengine needs ``pkg_resources``).
WHEELS = (
    'basicsr', 'mmsegmentation', 'mmcv-lite', 'mmengine', 'open_clip_torch', 'lmdb', 'addict', 'yapf',
    'platformdirs', 'termcolor', 'prettytable', 'wcwidth', 'ftfy', 'future', 'setuptools',
)  # fmt: skip
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64')
FULL = {'seg': 'HRNet-W48', 'clip': 'ViT-B-16', 'network': {}, 'batch': 16, 'gt_size': 128, 'iters': 20}
FULL.update(sizes=[(400, 600), (1080, 1920)], repeats=5, agree_size=(400, 600))
#: The dry run: CPU, tiny sizes, seconds per step.
DRY = dict(FULL, seg='HRNet-W18-small', clip='DeepSPG-CLIP-tiny', batch=2, gt_size=32, iters=1, repeats=1)
DRY.update(network={'num_feat': 4, 'illum_feat': 4, 'num_blocks': [1, 1, 1]}, sizes=[(40, 60), (54, 96)])
DRY['agree_size'] = (40, 60)
AMPS = ('none', 'bf16', 'fp16')


# ---- prepare (here) ---------------------------------------------------------------------------
def pip_download_args(spec, dest, python_version='3.12'):
    """``pip download`` arguments for ``spec`` as a binary wheel for CPython ``python_version`` on
    manylinux x86_64 (the GPU machine), without its dependencies."""
    args = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--python-version']
    args += [python_version, '--implementation', 'cp', '-d', dest, spec]
    for plat in PLATFORMS:
        args += ['--platform', plat]
    return args


def _norm(name):
    return re.sub(r'[-_.]+', '_', name).lower()


def _fits(filename, python_version):
    """Whether a wheel's tags admit CPython ``python_version`` on manylinux x86_64."""
    python, abi, plat = filename[: -len('.whl')].split('-')[-3:]
    cp = 'cp' + python_version.replace('.', '')
    py_ok = any(p in (cp, 'py3', 'py2.py3') or p == 'py' + python_version[0] for p in python.split('.'))
    plat_ok = plat == 'any' or any(
        p.startswith(('manylinux', 'linux')) and p.endswith('x86_64') for p in plat.split('.')
    )
    return py_ok and plat_ok and abi in ('none', cp, 'abi3')


def prepare(dest=WHEEL_DIR, names=WHEELS, python_version='3.12'):
    """Fetch (or build) one wheel per name of ``names`` into ``dest``, at the version installed here."""
    from importlib.metadata import PackageNotFoundError, version

    os.makedirs(dest, exist_ok=True)
    for name in names:
        try:
            spec = f'{name}=={version(name)}'
        except PackageNotFoundError:
            sys.exit(f'prepare: {name} is not installed here; install the project first (pip install -e .)')
        before = set(os.listdir(dest))
        proc = subprocess.run(pip_download_args(spec, dest, python_version), capture_output=True, text=True)
        if proc.returncode != 0:  # published as source only: build a wheel here (pure Python ones only)
            wheel = [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-w', dest, spec]
            proc = subprocess.run(wheel, capture_output=True, text=True)
        new = sorted(set(os.listdir(dest)) - before) or [
            f for f in os.listdir(dest) if _norm(f.split('-')[0]) == _norm(name)
        ]
        if proc.returncode != 0 or not new:
            sys.exit(f'prepare: no wheel for {spec}:\n{proc.stderr[-2000:]}')
        bad = [f for f in new if f.endswith('.whl') and not _fits(f, python_version)]
        if bad:
            sys.exit(f'prepare: {bad} would not install on CPython {python_version} manylinux x86_64')
        print(f'{spec}: {", ".join(new)}', flush=True)


# ---- run ----------------------------------------------------------------------------------------
def run_tests(rep, dry):
    """The CUDA-marked tests, in a subprocess; returns the pytest summary line."""
    files = sorted(f for f in glob.glob(os.path.join(ROOT, 'tests', 'test_*.py')) if 'mark.cuda' in open(f).read())
    cmd = [sys.executable, '-m', 'pytest', '-q', '-m', 'cuda', '-p', 'no:cacheprovider', *files]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip('= ') if lines else proc.stderr[-500:]
    ok = proc.returncode in (0, 5)  # 5: nothing collected
    rep('### CUDA-marked tests')
    rep()
    shown = shlex.join(['python', '-m', 'pytest', '-q', '-m', 'cuda'] + [os.path.relpath(f, ROOT) for f in files])
    rep(f'`{shown}`: **{summary}**{" (on the CPU they skip)" if dry else ""}')
    rep()
    if not ok:
        print(proc.stdout[-6000:], proc.stderr[-3000:], sep='\n')
    return {'summary': summary, 'returncode': proc.returncode, 'ok': ok}


def _peak_mib(device, reset=False):
    import torch

    from .bench.common import peak_rss_mib

    if device.type != 'cuda':
        return peak_rss_mib()
    if reset:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def run_train(rep, s, device):
    """``s['iters']`` iterations per precision: it/s, peak memory, the losses finite."""
    import torch

    from .bench.common import build, iteration, model_options, training_loader
    from .bench.core import sync

    rep(f'### Training, LOL-v1 settings: {s["seg"]} + {s["clip"]}, batch {s["batch"]}, {s["gt_size"]}x{s["gt_size"]}')
    rep()
    batches = training_loader(s['gt_size'], s['batch'], s['data_root'], torch.Generator().manual_seed(0))
    rows, results = [], {}
    for amp in AMPS:
        skip = 'fp16 autocast needs CUDA (perf.amp)' if amp == 'fp16' and device.type != 'cuda' else None
        if amp == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
            skip = 'no bf16 on this GPU'
        if skip:
            results[amp] = {'skipped': skip}
            rows.append([amp, f'skipped: {skip}', '', ''])
            continue
        model = build(
            model_options(s['seg'], s['clip'], extra={'perf': {'amp': amp}, 'network_g': s['network']}, is_train=True),
            device,
        )
        step = iteration(model, batches)
        step()  # warm-up
        _peak_mib(device, reset=True)
        sync(device)
        start = time.perf_counter()
        for _ in range(s['iters']):
            step()
        sync(device)
        seconds = time.perf_counter() - start
        losses = {k: float(v) for k, v in model.get_current_log().items()}
        finite = all(math.isfinite(v) for v in losses.values())
        results[amp] = {'it_s': s['iters'] / seconds, 'peak_mib': _peak_mib(device), 'losses': losses, 'ok': finite}
        rows.append([amp, f'{s["iters"] / seconds:.2f}', f'{results[amp]["peak_mib"]:.0f}', 'yes' if finite else 'NO'])
        del model, step
    mem = 'peak GPU memory (MiB)' if device.type == 'cuda' else 'peak RSS (MiB)'
    rep.table(['amp', f'it/s ({s["iters"]} iterations)', mem, 'losses finite'], rows)
    return results


def _enhancers(s, device):
    """``default``, ``perf`` (and on CUDA ``half``) :class:`DeepSPGEnhancer`, random weights (seed 0)."""
    from .bench.common import CONFIGS, model_options
    from .inference import DeepSPGEnhancer

    configs = {'default': ('default', False), 'perf': ('perf', False)}
    if device.type == 'cuda':
        configs['half'] = ('default', True)
    return {
        name: DeepSPGEnhancer(
            model_options(s['seg'], extra=dict(CONFIGS[config], network_g=s['network'])),
            random_weights=True,
            device=device,
            half=half,
        )
        for name, (config, half) in configs.items()
    }


def run_inference(rep, s, device):
    """The whole pipeline (the inference core) at each size, default and ``perf`` configurations."""
    from .bench.common import test_image

    rep('### Inference, whole pipeline (DeepSPGEnhancer: prior + enhancer + C2F), base preset')
    rep()
    enhancers = _enhancers(s, device)
    rows, results = [], {}
    for h, w in s['sizes']:
        x = test_image(h, w)
        peaks = {}
        for name, enh in enhancers.items():
            _peak_mib(device, reset=True)
            enh.enhance_tensor(x)
            peaks[name] = _peak_mib(device)
        fns = {k: (lambda e=e, x=x: e.enhance_tensor(x)) for k, e in enhancers.items()}
        times = rounds(fns, s['repeats'], device=device)
        for name in times:
            results[f'{w}x{h} {name}'] = {'seconds': times.median(name), 'peak_mib': peaks[name]}
            rows.append([f'{w}x{h}', f'`{name}`', times.fmt(name), f'{peaks[name]:.0f}'])
    mem = 'peak GPU memory (MiB)' if device.type == 'cuda' else 'peak RSS (MiB)'
    rep.table(['size', 'configuration', 'latency (incl. copies to and from the device)', mem], rows)
    return results


def run_agreement(rep, s, device):
    """The same random weights on ``device`` and on the CPU: relative L2 of each part's output."""
    import torch

    from .bench.common import model_options, psnr, test_image
    from .inference import DeepSPGEnhancer

    def rel(a, b):
        a, b = a.detach().float().cpu(), b.detach().float().cpu()
        return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()

    opt = model_options(s['seg'], extra={'network_g': s['network']})
    ref, dev = (DeepSPGEnhancer(opt, random_weights=True, device=d) for d in (torch.device('cpu'), device))
    x = test_image(*s['agree_size'])
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            feats = [rel(a, b) for a, b in zip(dev.model.sem_features(x.to(device)), ref.model.sem_features(x))]
            logits = rel(dev.seg_prior(x.to(device))['logits'], ref.seg_prior(x)['logits'])
            out_ref, out_dev = ref.enhance_tensor(x)['out'], dev.enhance_tensor(x)['out']
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    r = {'features': feats, 'logits': logits, 'image': rel(out_dev, out_ref), 'psnr': psnr(out_dev, out_ref)}
    r['ok'] = max(*feats, logits, r['image']) <= 1e-3 and r['psnr'] >= 50
    h, w = s['agree_size']
    rep(f'### {device.type.upper()} vs CPU, same random weights, fp32 (TF32 off), a {w}x{h} dim input')
    rep()
    rows = [
        ['prior features (rel. L2, per branch)', ' / '.join(f'{v:.1e}' for v in feats)],
        ['prior logits (rel. L2)', f'{logits:.1e}'],
        ['enhanced image (rel. L2)', f'{r["image"]:.1e}'],
        ['enhanced image, PSNR to the CPU output (dB)', 'inf' if math.isinf(r['psnr']) else f'{r["psnr"]:.1f}'],
    ]
    rep.table(['output', 'agreement'], rows)
    rep(f'Verdict (tolerance: rel. L2 <= 1e-3, PSNR >= 50 dB): **{"agree" if r["ok"] else "DISAGREE"}**.')
    rep()
    return r


STEPS = {'tests': None, 'train': run_train, 'inference': run_inference, 'agreement': run_agreement}


def replace_section(text, section):
    """``text`` with the ``cuda`` block replaced by ``section`` (the markers appended when absent)."""
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
    """The check: its steps, the Markdown and JSON under ``args.out``, the rows into ``args.doc``."""
    import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

    # isort: split
    import logging

    from deepspg_basicsr.data.demo_data import make_demo_data

    import torch

    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        sys.exit('cuda_check: no CUDA device here; `--dry-run` rehearses the whole run on the CPU with tiny sizes')
    device = torch.device('cpu' if dry else 'cuda')
    s = dict(DRY if dry else FULL, **({'iters': args.iters} if args.iters else {}))
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
        f'torch {torch.__version__} (CUDA {torch.version.cuda}). **All networks have random weights.**'
    )
    rep()
    results = {'device': gpu, 'dry_run': dry, 'settings': {k: v for k, v in s.items() if k != 'data_root'}}
    failed = []
    for name in args.only or STEPS:
        try:
            results[name] = run_tests(rep, dry) if name == 'tests' else STEPS[name](rep, s, device)
            ok = results[name].get('ok', True) and all(
                r.get('ok', True) for r in results[name].values() if isinstance(r, dict)
            )
            if not ok:
                failed.append(name)
        except Exception:  # report it and go on; exit non-zero at the end
            failed.append(name)
            rep.failure(f'Step `{name}`')
    rep(f'Total {time.perf_counter() - start:.0f} s.' + (f' Failed: {failed}.' if failed else ''))
    section = rep.texts()[BLOCK]
    results.update(failed=failed, seconds=time.perf_counter() - start)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, 'cuda_check.md'), 'w') as f:
            f.write(section + '\n')
        with open(os.path.join(args.out, 'cuda_check.json'), 'w') as f:
            json.dump(results, f, indent=2, default=str)
    doc = args.doc if args.doc is not None else (None if dry else DOC)
    if doc:
        with open(doc) as f:
            text = f.read()
        with open(doc, 'w') as f:
            f.write(replace_section(text, section))
    if failed:
        sys.exit(f'cuda_check: failed steps {failed}')
    return section


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
    p.add_argument('--only', nargs='+', choices=tuple(STEPS))
    p.add_argument('--iters', type=int, help='training iterations per precision (default 20; dry run 1)')
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
        args.command = public_command(argv, prefix='python -m deepspg_basicsr.cuda_check')
        check(args)


if __name__ == '__main__':
    main()
