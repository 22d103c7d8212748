"""What the benchmark sections share: the model builder, the test images, the training batches.

Every network built here has **random weights** (nothing is downloaded): speed and memory do not
depend on them. The tables :data:`SEG_CONFIGS` and :data:`PRESETS` name what the sections measure;
:data:`SEG_CONFIGS` is read from the known-weights table (:data:`deepspg_basicsr.weights.KNOWN_WEIGHTS`):
a new prior is one more name in :data:`BENCH_PRIORS`.
"""

import copy
import glob
import importlib.util
import math
import os
import resource
import sys
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from ..weights import KNOWN_WEIGHTS
from .core import sync

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_ROOT = os.path.join(ROOT, 'datasets', 'demo', 'LOL-v1')
#: The priors the sections measure: names of :data:`~deepspg_basicsr.weights.KNOWN_WEIGHTS`.
BENCH_PRIORS = ('hrnet-w48-ade20k', 'hrnet-w18s-ade20k', 'espnetv2-pascal')
#: Segmentation priors: label -> (MMSegmentation config, channels of the branches fed to SEM).
SEG_CONFIGS = {
    KNOWN_WEIGHTS[n].label: (KNOWN_WEIGHTS[n].seg_config, KNOWN_WEIGHTS[n].sem_channels) for n in BENCH_PRIORS
}
#: Prior branches fed to SEM (label -> branches; HRNet [0, 1, 2], ESPNetv2 its encoder at strides 4 / 8 / 16).
SEG_BRANCHES = {KNOWN_WEIGHTS[n].label: KNOWN_WEIGHTS[n].seg_branches for n in BENCH_PRIORS}
#: Enhancer presets: name -> ``network_g`` widths.
PRESETS = {'base': {'num_feat': 16, 'illum_feat': 16}, 'large': {'num_feat': 32, 'illum_feat': 32}}
#: The ``perf`` levers that change the output (bf16); channels-last and BN folding are defaults.
PERF = {'amp': 'bf16', 'channels_last': True}
#: Inference configurations (``default``: the option files').
CONFIGS = {
    'default': {},
    'perf': {'perf': PERF},
    'fast': {'perf': PERF, 'prior': {'seg_scale': 0.5, 'c2f_seg_scale': 1.0}},
    'fastest': {'perf': PERF, 'prior': {'seg_scale': 0.5, 'c2f_seg_scale': 0.5}},
}
LOSS_NAMES = ('pixel', 'edge', 'semantic', 'clip')


def ensure_demo_data(root=DEMO_ROOT):
    """Make the demo data set (seconds, deterministic) when ``root`` (its ``LOL-v1`` folder) lacks it."""
    if not os.path.isdir(os.path.join(root, 'our485', 'low')):
        from deepspg_basicsr.data.demo_data import make_demo_data

        make_demo_data(os.path.dirname(root))
    return root


def devices():
    """Devices to measure: the CPU, and CUDA when there is one."""
    return [torch.device('cpu')] + ([torch.device('cuda')] if torch.cuda.is_available() else [])


def peak_rss_mib():
    """Peak resident set size of this process in MiB (Linux ``VmHWM``, else ``ru_maxrss``)."""
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:')) / 2**10
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10


def fmt_peak(result):
    """(peak MiB, increase over the post-build peak) as text, from a memory worker's result."""
    if 'cuda_peak_mib' in result:
        return f'{result["cuda_peak_mib"]:.0f}', ''
    return f'{result["peak_rss_mib"]:.0f}', f'+{result["peak_rss_mib"] - result["rss_before_mib"]:.0f}'


def psnr(a, b):
    """PSNR (dB) of ``a`` against ``b``, both clamped to [0, 1]; inf when identical."""
    mse = F.mse_loss(a.float().clamp(0, 1), b.float().clamp(0, 1)).item()
    return float('inf') if mse == 0 else 10 * math.log10(1 / mse)


def _read_rgb(path, w, h):
    import cv2
    import numpy as np

    img = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    img = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_CUBIC)
    return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def test_image(h, w, seed=0, root=DEMO_ROOT):
    """A dim image (1, 3, h, w) in [0, 1]: a demo test image resized, or a smooth synthetic one.

    Args:
        h (int): Height.
        w (int): Width.
        seed (int): Which demo image (modulo their number), or the synthetic image's seed.
        root (str): The demo data set. Default: :data:`DEMO_ROOT`.
    """
    files = sorted(glob.glob(os.path.join(ensure_demo_data(root), 'eval15', 'low', '*.png')))
    if files:
        return _read_rgb(files[seed % len(files)], w, h)
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(h, w), mode='bicubic', align_corners=False)
    return (0.15 * base).clamp(0, 1)


def demo_images(w, h, count, kind='low', root=DEMO_ROOT):
    """The first ``count`` demo test images of ``kind`` (``low`` / ``high``) resized to ``w`` x ``h``.

    Raises:
        FileNotFoundError: No demo data (``python datasets/make_demo_data.py`` makes it).
    """
    files = sorted(glob.glob(os.path.join(ensure_demo_data(root), 'eval15', kind, '*.png')))
    if not files:
        raise FileNotFoundError(f'no demo images under {root}: run python datasets/make_demo_data.py first')
    return [_read_rgb(p, w, h) for p in files[:count]]


def model_options(seg='HRNet-W48', clip='ViT-B-16', preset='base', extra=None, is_train=False, losses=LOSS_NAMES):
    """Options of a DeepSPGModel with random priors (nothing downloaded).

    Args:
        seg (str): Key of :data:`SEG_CONFIGS`.
        clip (str): open_clip model name of the CLIP prior (training only).
        preset (str): Key of :data:`PRESETS`.
        extra (dict | None): Sections merged one level deep (``perf``, ``prior``, ``network_g``).
        is_train (bool): Training options (losses, optimiser).
        losses (tuple[str]): Losses on in training (names of :data:`LOSS_NAMES`).
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
            'seg_branches': SEG_BRANCHES.get(seg, [0, 1, 2]),
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
    """Build a DeepSPGModel, the enhancer's random weights drawn from ``seed`` (priors seed their own).

    Args:
        opt (dict): Options (:func:`model_options`).
        device (torch.device | None): ``cpu`` forces ``num_gpu: 0``. Default: None.
        seed (int): Seed of the enhancer's weights. Default: 0.
    """
    import deepspg_basicsr  # noqa: F401  (registration before basicsr builds)

    from basicsr.models import build_model

    if device is not None and device.type == 'cpu':
        opt = dict(opt, num_gpu=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(opt)


def run_pipeline(model, x, mode='inference'):
    """The model's inference path (prior + enhancer + C2F, as ``DeepSPGModel.test``) on ``x``.

    Args:
        model: A DeepSPGModel.
        x (Tensor): (B, 3, H, W) in [0, 1].
        mode (str): ``inference`` (``inference_mode``), ``no_grad`` or ``grad``.
    """
    ctx = {'inference': torch.inference_mode, 'no_grad': torch.no_grad, 'grad': nullcontext}[mode]
    with ctx():
        return model.enhance(model.net_g, x)


def paired_dataset(root, split='our485', **options):
    """The ``PairedLLIEDataset`` of ``root/split/{low,high}``; ``options``: its training keys
    (``gt_size``, flips); without them a validation set of whole images."""
    from deepspg_basicsr.data.paired_llie_dataset import PairedLLIEDataset

    return PairedLLIEDataset(
        {
            'name': f'bench_{split}',
            'type': 'PairedLLIEDataset',
            'phase': 'train' if options else 'val',
            'dataroot_gt': os.path.join(root, split, 'high'),
            'dataroot_lq': os.path.join(root, split, 'low'),
            'io_backend': {'type': 'disk'},
            **options,
        }
    )


def unfolded_pipeline(seg, device=None):
    """The pipeline as first written (before the perf defaults): the full prior backbone per pass,
    MMSegmentation's BatchNorms, NCHW; the same random weights as :func:`build`'s. Returns
    (callable x -> output, the model)."""
    plain = build(model_options(seg, extra={'perf': {'channels_last': False, 'fold_prior_bn': False}}), device)
    net, branches = plain.get_bare_model(plain.net_g).eval(), plain.seg_branches

    def feats(t):
        every = plain.seg_prior(t, return_logits=False)['feats']
        return [every[b] for b in branches]

    return (lambda x: net(x, feats(x), prior=feats)), plain


def training_loader(gt_size, batch, root=DEMO_ROOT, generator=None):
    """Endless training batches of the paired data under ``root`` (shuffled by ``generator``).

    Args:
        gt_size (int): Crop size.
        batch (int): Batch size.
        root (str): A LOL-v1-style folder (``our485/{low,high}``). Default: the demo data.
        generator (torch.Generator | None): Shuffling. Default: None.
    """
    ensure_demo_data(root)
    dataset = paired_dataset(root, gt_size=gt_size, use_hflip=True, use_rot=True)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=0, drop_last=True, generator=generator
    )

    def batches():
        while True:
            yield from loader

    return batches()


def train_breakdown(model, batches, repeats):
    """Time the steps of ``DeepSPGModel.optimize_parameters``, in its order, ``repeats`` times.

    Args:
        model: A DeepSPGModel with training options.
        batches (iterator): Training batches (:func:`training_loader`).
        repeats (int): Timed iterations (one more runs first as a warm-up).

    Returns:
        dict[str, list[float]]: Step -> seconds, the warm-up dropped.
    """
    import time

    times = {}
    dev = model.device

    def timed(name, fn, *args, **kwargs):
        sync(dev)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(dev)
        times.setdefault(name, []).append(time.perf_counter() - start)
        return out

    for _ in range(repeats + 1):
        model.feed_data(timed('data loading (batch from the DataLoader, 0 workers)', next, batches))
        model.optimizer_g.zero_grad(set_to_none=True)
        feats = timed('prior on the input (no_grad)', model.sem_features, model.lq)
        c2f_time = []

        def c2f_prior(img, c2f_time=c2f_time):
            sync(dev)
            start = time.perf_counter()
            out = model.c2f_features(img)
            sync(dev)
            c2f_time.append(time.perf_counter() - start)
            return out

        output = timed(
            'enhancer forward (incl. C2F prior)', model._run_net, model.net_g, model.lq, feats, prior=c2f_prior
        )
        times.setdefault('  of which: C2F prior on the coarse result', []).append(sum(c2f_time))
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


def iteration(model, batches):
    """A callable running one training iteration as BasicSR's loop does (``feed_data`` +
    ``optimize_parameters``) on the next batch."""

    def call():
        model.feed_data(next(batches))
        model.optimize_parameters(1)

    return call


#: Retinexformer's LOL-v1 network options (its ``Options/RetinexFormer_LOL_v1.yml``).
PEER_OPTIONS = {'in_channels': 3, 'out_channels': 3, 'n_feat': 40, 'stage': 1, 'num_blocks': [1, 2, 2]}


def load_peer(path, cls='RetinexFormer', options=None, seed=0):
    """A peer network class built from its own arch file, imported by path (never vendored).

    Args:
        path (str): The peer's arch file, e.g. Retinexformer's ``basicsr/models/archs/RetinexFormer_arch.py``.
        cls (str): Class name in that file. Default: ``RetinexFormer``.
        options (dict | None): Constructor keywords. Default: :data:`PEER_OPTIONS` (LOL-v1).
        seed (int): Seed of the random weights. Default: 0.

    Returns:
        nn.Module: The network in eval mode.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'peer arch file not found: {path}')
    spec = importlib.util.spec_from_file_location('deepspg_bench_peer_arch', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return getattr(mod, cls)(**(PEER_OPTIONS if options is None else options)).eval()
