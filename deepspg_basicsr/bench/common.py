"""What the benchmark sections share: the model builder (**random weights**, nothing downloaded), the
test images, the training batches. The priors measured are names of the known-weights table."""

import copy
import glob
import importlib.util
import itertools
import math
import os
import resource
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from ..inference.options import model_options as inference_options
from ..utils.image_io import read_image
from ..weights import KNOWN_WEIGHTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_ROOT = os.path.join(ROOT, 'datasets', 'demo', 'LOL-v1')
#: The priors the sections measure: names of :data:`~deepspg_basicsr.weights.KNOWN_WEIGHTS`.
BENCH_PRIORS = ('hrnet-w48-ade20k', 'hrnet-w18s-ade20k', 'espnetv2-pascal')
#: Segmentation priors measured: label -> :class:`~deepspg_basicsr.weights.KnownWeights` (config, branches, channels).
SEG_PRIORS = {KNOWN_WEIGHTS[n].label: KNOWN_WEIGHTS[n] for n in BENCH_PRIORS}
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
#: The training losses: name -> (option key, loss type, weight).
LOSSES = {
    'pixel': ('pixel_opt', 'SPGPixelLoss', 1.0),
    'edge': ('edge_opt', 'SPGEdgeLoss', 1.0),
    'semantic': ('semantic_opt', 'SemanticKLLoss', 0.01),
    'clip': ('clip_opt', 'CLIPMultimodalLoss', 0.01),
}
LOSS_NAMES = tuple(LOSSES)


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


def psnr(a, b):
    """PSNR (dB) of ``a`` against ``b``, both clamped to [0, 1]; inf when identical."""
    mse = F.mse_loss(a.float().clamp(0, 1), b.float().clamp(0, 1)).item()
    return float('inf') if mse == 0 else 10 * math.log10(1 / mse)


def parse_size(text):
    """``'600x400'`` -> (600, 400)."""
    w, h = (int(v) for v in text.lower().split('x'))
    return w, h


def demo_images(w, h, count, kind='low', root=DEMO_ROOT, first=0):
    """Demo test images ``first`` .. ``first + count - 1`` (modulo their number) of ``kind`` (``low`` /
    ``high``), each resized (bicubic) to (1, 3, ``h``, ``w``) RGB in [0, 1]; the data made if missing."""
    files = sorted(glob.glob(os.path.join(ensure_demo_data(root), 'eval15', kind, '*.png')))
    if not files:
        raise FileNotFoundError(f'no demo images under {root}: run python datasets/make_demo_data.py first')
    images = [read_image(files[i % len(files)])[0] for i in range(first, first + count)]
    return [F.interpolate(x, size=(h, w), mode='bicubic', align_corners=False).clamp(0, 1) for x in images]


def test_image(h, w, seed=0, root=DEMO_ROOT):
    """Demo test image ``seed`` (modulo their number) resized to (1, 3, ``h``, ``w``)."""
    return demo_images(w, h, 1, root=root, first=seed)[0]


def model_options(seg='HRNet-W48', clip='ViT-B-16', preset='base', extra=None, is_train=False, losses=LOSS_NAMES):
    """The inference core's options of a DeepSPGModel with random weights: ``seg`` a key of :data:`SEG_PRIORS`,
    ``clip`` an open_clip name, ``preset`` of :data:`PRESETS`, ``extra`` sections merged one level deep, and
    with ``is_train`` the ``losses`` on (names of :data:`LOSS_NAMES`) and Adam."""
    known = SEG_PRIORS[seg]
    network = dict(type='DeepSPG', num_blocks=[4, 3, 2], sem_channels=known.sem_channels, **PRESETS[preset])
    prior = dict(known.option_fragment()['prior'], seg_checkpoint=None, clip_model=clip, clip_pretrained=None)
    opt = inference_options({'network_g': network, 'prior': prior}, None, num_gpu=int(torch.cuda.is_available()))
    opt.update(name='benchmark', is_train=is_train)
    if is_train:
        opt['train'] = {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 3e-4, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5},
        }
        for name in losses:
            key, kind, weight = LOSSES[name]
            opt['train'][key] = {'type': kind, 'loss_weight': weight}
    for section, values in copy.deepcopy(extra or {}).items():
        opt.setdefault(section, {}).update(values)
    return opt


def build(opt, device=None, seed=0):
    """The DeepSPGModel of ``opt``, enhancer weights drawn from ``seed``; ``device`` cpu: ``num_gpu: 0``."""
    from basicsr.models import build_model

    if device is not None and device.type == 'cpu':
        opt = dict(opt, num_gpu=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(opt)


def run_pipeline(model, x, mode='inference'):
    """``model.enhance`` (prior, enhancer, C2F) on ``x`` (B, 3, H, W) under ``inference_mode``,
    ``no_grad`` or with ``grad``, per ``mode`` (``inference`` / ``no_grad`` / ``grad``)."""
    ctx = {'inference': torch.inference_mode, 'no_grad': torch.no_grad, 'grad': nullcontext}[mode]
    with ctx():
        return model.enhance(model.net_g, x)


def made_once(path, make, what='exported'):
    """``path``, made by ``make(path)`` unless it exists (exports are reused across runs)."""
    if not os.path.isfile(path):
        start = time.perf_counter()
        make(path)
        print(f'{what} {path} in {time.perf_counter() - start:.0f} s', flush=True)
    return path


def export_once(module, path, **kwargs):
    """``module`` (one image input) exported to ONNX at ``path`` unless it exists (:func:`made_once`)."""
    from deepspg_basicsr.export import export_model

    x0 = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.3
    return made_once(path, lambda p: export_model(module, (x0,), p, **kwargs))


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


class Forward(torch.nn.Module):
    """``fn(module, *inputs)`` as a module (what fvcore counts and ONNX exports)."""

    def __init__(self, module, fn):
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self, *inputs):
        return self.fn(self.module, *inputs)


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


def training_loader(gt_size, batch, root=DEMO_ROOT, generator=None, dataset=None):
    """Endless training batches (``gt_size`` crops, flips) of ``root/our485`` (default: the demo data),
    or of ``dataset`` when given."""
    if dataset is None:
        ensure_demo_data(root)
        dataset = paired_dataset(root, gt_size=gt_size, use_hflip=True, use_rot=True)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=0, drop_last=True, generator=generator
    )
    return itertools.chain.from_iterable(itertools.repeat(loader))


def iteration(model, batches):
    """A callable running one training iteration as BasicSR's loop does (``feed_data`` +
    ``optimize_parameters``) on the next batch."""

    def call():
        model.feed_data(next(batches))
        model.optimize_parameters(1)

    return call


#: Retinexformer's LOL-v1 network options (its ``Options/RetinexFormer_LOL_v1.yml``).
PEER_OPTIONS = {'in_channels': 3, 'out_channels': 3, 'n_feat': 40, 'stage': 1, 'num_blocks': [1, 2, 2]}


def load_peer(path, options=None, seed=0):
    """Class ``RetinexFormer`` of a peer's own arch file ``path`` (imported by path, never vendored), built with
    ``options`` (default :data:`PEER_OPTIONS`) and random weights of ``seed``, in eval mode."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'peer arch file not found: {path}')
    spec = importlib.util.spec_from_file_location('deepspg_bench_peer_arch', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return mod.RetinexFormer(**(PEER_OPTIONS if options is None else options)).eval()
