"""``deepspg-enhance``: enhance your own low-light images with a trained DeepSPG (no ground truth).

Usage::

    deepspg-enhance photos/ -opt options/test_DeepSPG_LOLv1.yml --output enhanced/
    deepspg-enhance 'photos/*.jpg' img.png -opt options/test_DeepSPG_LOLv1.yml --weights net_g.pth \\
        --output enhanced/ --tile 512 --overlap 64 --device cuda --half
    deepspg-enhance photos/ --backend onnxruntime --onnx deepspg.onnx --output enhanced/ --threads 2
    python -m deepspg_basicsr.enhance ...

Inputs are files, folders (their image files, not recursive) and glob patterns. Each result is
written into ``--output`` under the input's file name, in the input's format: bit depth (8 / 16
bit, float), grey or colour, and the alpha channel (kept aside, never enhanced) as far as the
extension's codec stores them (:mod:`deepspg_basicsr.utils.image_io`). Optional pictures go into
sub-folders: ``compare/`` (input | output side by side), ``maps/`` (illumination and reflectance,
reflectance clipped to [0, 1] for display) and ``seg/`` (the prior's segmentation of the input as
a colour overlay on the output, fixed 150-colour palette). A file that cannot be read, enhanced or
written is reported by name and the others are still processed; the exit status is then 1 and
the failures are listed at the end.

Pictures are named after the input's stem (``compare/s.png``), or after its whole file name when
two inputs share the stem (``s.png`` and ``s.jpg``: ``compare/s.png.png``, ``compare/s.jpg.png``).
Results already in ``--output`` are never replaced silently: the run is refused (status 2) unless
``--overwrite``. Exit status: 0 all written, 1 some failed, 2 bad command line / model / output
folder, 130 interrupted (Ctrl-C; the images finished so far are kept).

Large images: ``--tile T`` processes overlapping T x T tiles blended without seams
(:func:`deepspg_basicsr.utils.tiling.tiled_forward`, tiles aligned to the network's
down-sampling factor). The segmentation prior then sees one tile at a time: its semantics are
local to the tile (default), or, with ``--prior-global``, the prior runs once on the whole image
downscaled to ``--prior-size`` and each tile gets the matching crop of those features (both C2F
passes; each pass is then a tiled pass over the whole image). See docs/EVALUATION.md for the
memory bound and measured differences.

``--backend onnxruntime --onnx FILE`` runs a model written by ``deepspg-export`` instead
(:class:`deepspg_basicsr.deploy.OrtEnhancer`; docs/DEPLOY.md): same inputs, outputs, tiles,
self-ensemble and maps; ``--half``, ``--save-seg`` and ``--prior-global`` need the torch backend.
"""

import argparse
import glob
import os
import sys

import torch
import torch.nn.functional as F

from .utils.class_names import seg_palette
from .utils.image_io import ImageRecord, read_image, write_image
from .utils.self_ensemble import self_ensemble
from .utils.tiling import tiled_forward

__all__ = [
    'main',
    'build_enhancer',
    'load_model',
    'default_args',
    'collect_inputs',
    'enhance_tensor',
    'run_enhancer',
    'segment_image',
    'colour_overlay',
    'seg_palette',
    'crop_features',
]

#: Extensions of the files taken from an input folder (what OpenCV decodes).
IMAGE_EXTENSIONS = (
    '.png', '.jpg', '.jpeg', '.jpe', '.bmp', '.dib', '.tif', '.tiff', '.webp', '.exr', '.hdr', '.pfm',
    '.ppm', '.pgm', '.pbm', '.pnm', '.sr', '.ras', '.jp2',
)  # fmt: skip
#: Default of ``--overlap`` (pixels).
OVERLAP_DEFAULT = 64
#: The DeepSPG base preset, used when no option file is given.
DEFAULT_NETWORK = {'type': 'DeepSPG'}


class EnhanceError(RuntimeError):
    """A problem with the command line or the model (not with one image)."""


# ---- inputs ------------------------------------------------------------------------------------
def collect_inputs(inputs):
    """Expand files, folders and glob patterns into a list of files.

    Args:
        inputs (list[str]): Paths: a file (taken whatever its extension), a folder (its files
            with an image extension, sorted, hidden files skipped) or a glob pattern (``*``,
            ``?``, ``[``; sorted matches).

    Returns:
        tuple[list[str], list[tuple[str, str]]]: The files in order (duplicates removed), and
        (input, message) for each input that names nothing.
    """
    files, problems, seen = [], [], set()

    def add(path):
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            files.append(path)

    for item in inputs:
        if os.path.isdir(item):
            names = sorted(
                n for n in os.listdir(item) if not n.startswith('.') and n.lower().endswith(IMAGE_EXTENSIONS)
            )
            names = [n for n in names if os.path.isfile(os.path.join(item, n))]
            if not names:
                problems.append((item, 'folder holds no image files'))
            for name in names:
                add(os.path.join(item, name))
        elif os.path.isfile(item):
            add(item)
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not matches:
                problems.append((item, 'pattern matches no file'))
            for path in matches:
                add(path)
        else:
            problems.append((item, 'no such file or folder'))
    return files, problems


def picture_stems(files):
    """The stem under which each file's optional pictures are written (``compare/<stem>.png``, ...).

    The file's stem, unless two inputs share it (``s.png``, ``s.jpg``): those use their whole
    file name (``compare/s.png.png``, ``compare/s.jpg.png``), which is unique among the outputs.

    Args:
        files (list[str]): Inputs with distinct file names (see :func:`_unique_names`).

    Returns:
        dict[str, str]: File -> picture stem, all distinct.
    """
    names = {path: os.path.basename(path) for path in files}
    stems = {path: os.path.splitext(name)[0] for path, name in names.items()}
    while True:
        count = {}
        for stem in stems.values():
            count[stem] = count.get(stem, 0) + 1
        clashing = [path for path, stem in stems.items() if count[stem] > 1 and stem != names[path]]
        if not clashing:
            return stems
        for path in clashing:
            stems[path] = names[path]


def planned_outputs(path, args, stem):
    """Every file :func:`process_file` writes for the input ``path``."""
    out = [os.path.join(args.output, os.path.basename(path))]
    if args.save_compare:
        out.append(_picture_path(args.output, 'compare', stem))
    if args.save_maps:
        out += [_picture_path(args.output, 'maps', stem, f'_{m}') for m in ('illumination', 'reflectance')]
    if args.save_seg:
        out.append(_picture_path(args.output, 'seg', stem))
    return out


def check_output_folder(files, args, stems):
    """Refuse an ``--output`` that is a file, and, without ``--overwrite``, outputs that exist.

    Raises:
        EnhanceError: naming ``--output`` and the first existing files.
    """
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise EnhanceError(f'--output {args.output} exists and is not a folder')
    if args.overwrite or not os.path.isdir(args.output):
        return
    existing = [
        out
        for path in files
        for out in planned_outputs(path, args, stems[path])
        if os.path.exists(out) and not os.path.samefile(out, path)  # the input itself: reported per file
    ]
    if existing:
        shown = ', '.join(existing[:3]) + (', ...' if len(existing) > 3 else '')
        raise EnhanceError(
            f'{len(existing)} output file(s) already exist in --output {args.output} ({shown}); pass --overwrite '
            'to replace them, or choose another --output folder'
        )


def _unique_names(files):
    """Split ``files`` into those with distinct file names and (file, message) for the later ones
    whose name is taken (outputs are written under the input's name)."""
    first, keep, clashes = {}, [], []
    for path in files:
        name = os.path.basename(path)
        if name in first:
            clashes.append((path, f'same file name as {first[name]}: the output would overwrite its result'))
        else:
            first[name] = path
            keep.append(path)
    return keep, clashes


# ---- model ---------------------------------------------------------------------------------------
def _load_yaml(path):
    import yaml

    if not os.path.isfile(path):
        raise EnhanceError(f'option file not found: {path}')
    with open(path, encoding='utf-8') as f:
        opt = yaml.safe_load(f) or {}
    if not isinstance(opt, dict):
        raise EnhanceError(f'option file {path} does not hold a mapping')
    return opt


def model_options(args, device):
    """The is_train=False BasicSR options of the enhancer, from ``-opt`` and the flags."""
    opt = _load_yaml(args.opt) if args.opt else {}
    paths = opt.get('path') or {}
    if args.random_weights and args.weights:
        raise EnhanceError('--random-weights and --weights exclude each other')
    weights = None if args.random_weights else args.weights or paths.get('pretrain_network_g')
    if weights is None and not args.random_weights:
        raise EnhanceError(
            'no enhancer weights: pass --weights net_g.pth or set path.pretrain_network_g in the option file '
            '(--random-weights runs an untrained network, for measurements only)'
        )
    if weights is not None and not os.path.isfile(weights):
        raise EnhanceError(f'weights file not found: {weights}')
    prior = dict(opt.get('prior') or {})
    if args.seg_checkpoint:
        prior['seg_checkpoint'] = args.seg_checkpoint
    allow_unsafe = bool(args.allow_unsafe_checkpoint or paths.get('allow_unsafe_checkpoint', False))
    if allow_unsafe:
        prior['allow_unsafe_checkpoint'] = True
    return {
        'name': 'deepspg_enhance',
        'model_type': opt.get('model_type', 'DeepSPGModel'),
        'is_train': False,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'num_gpu': 1 if device.type == 'cuda' else 0,
        'network_g': dict(opt.get('network_g') or DEFAULT_NETWORK),
        'prior': prior,
        'path': {
            'pretrain_network_g': weights,
            'param_key_g': args.param_key or paths.get('param_key_g', 'params'),
            'strict_load_g': True,
            'allow_unsafe_checkpoint': allow_unsafe,
        },
        'val': {'self_ensemble': bool(args.self_ensemble)},
        # deepspg-export --no-fold-bn: the prior's BatchNorms stay (else folded, the perf default)
        'perf': {'fold_prior_bn': not getattr(args, 'no_fold_bn', False)},
    }


def build_enhancer(args, device):
    """Build the BasicSR model (DeepSPGModel or a subclass) with the enhancer and its priors, in
    eval mode, on ``device`` (fp16 with ``args.half``)."""
    from basicsr.models import build_model

    opt = model_options(args, device)
    if opt['path']['pretrain_network_g'] is None:  # --random-weights: the same untrained net on every run
        from basicsr.utils import get_root_logger

        get_root_logger().warning('!!! --random-weights: THE ENHANCER IS UNTRAINED; outputs are for measurements !!!')
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_model(opt)
    else:
        model = build_model(opt)
    if not hasattr(model, 'enhance'):
        raise EnhanceError(f'model_type {type(model).__name__} has no enhance(); use DeepSPGModel or a subclass')
    model.net_g.eval()
    if args.half:
        model.net_g.half()
        if model.seg_prior is not None:
            model.seg_prior.half()
        if getattr(model, 'text_tokens', None) is not None:
            model.text_tokens = model.text_tokens.half()
    return model


def build_ort_enhancer(args):
    """The ONNX Runtime backend (:class:`~deepspg_basicsr.deploy.OrtEnhancer`) for ``--onnx``;
    options that need the PyTorch model are refused by name."""
    from .deploy.ort_backend import OrtEnhancer

    flags = (('--half', args.half), ('--save-seg', args.save_seg), ('--prior-global', args.prior_global))
    refused = [flag for flag, on in flags if on]
    if refused:
        raise EnhanceError(f'{", ".join(refused)}: not available with --backend onnxruntime (use --backend torch)')
    return OrtEnhancer(args.onnx, threads=args.threads, device=args.device)


# ---- enhancement -------------------------------------------------------------------------------
def _downscale(x, max_side):
    """``x`` (B, C, H, W) resized (antialiased bilinear) so that its longer side is at most ``max_side``."""
    h, w = x.shape[-2:]
    scale = max_side / max(h, w)
    if scale >= 1:
        return x
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=True)


def crop_features(feats, box, image_size):
    """The part of whole-image feature maps that covers one tile, resampled (bilinear).

    Args:
        feats (list[Tensor]): Maps (B, C_i, h_i, w_i), each covering the whole image.
        box (tuple[int, int, int, int]): (top, left, height, width) of the tile in image pixels.
        image_size (tuple[int, int]): (H, W) of the image the maps cover.

    Returns:
        list[Tensor]: One (B, C_i, n_i, m_i) map per input, ``n_i = round(height * h_i / H)``
        (at least 1), sampled at the tile's pixel centres' positions (border values outside).
    """
    top, left, height, width = box
    full_h, full_w = image_size
    out = []
    for f in feats:
        n = max(1, round(height * f.shape[-2] / full_h))
        m = max(1, round(width * f.shape[-1] / full_w))
        ys = (top + (torch.arange(n, device=f.device, dtype=torch.float32) + 0.5) * height / n) * 2 / full_h - 1
        xs = (left + (torch.arange(m, device=f.device, dtype=torch.float32) + 0.5) * width / m) * 2 / full_w - 1
        grid = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), dim=-1)  # (n, m, 2) as (x, y)
        grid = grid.to(f.dtype).unsqueeze(0).expand(f.shape[0], -1, -1, -1)
        out.append(F.grid_sample(f, grid, mode='bilinear', padding_mode='border', align_corners=False))
    return out


def enhance_tensor(
    model,
    x,
    tile=0,
    overlap=64,
    self_ens=False,
    maps=False,
    prior_global=False,
    prior_size=1024,
    device=None,
    progress=None,
):
    """Enhance one image, whole or in tiles.

    Args:
        model (DeepSPGModel): From :func:`build_enhancer`.
        x (Tensor): Low-light RGB (1, 3, H, W) float32 in [0, 1], on the CPU (or ``device``).
        tile (int): Tile size; 0 processes the whole image at once. Default: 0.
        overlap (int): Minimum overlap of neighbouring tiles. Default: 64.
        self_ens (bool): Average the 8 flips / rotations (per tile). Default: False.
        maps (bool): Also return the illumination and reflectance (DeepSPG). Default: False.
        prior_global (bool): Run the prior once on the whole image downscaled to ``prior_size``
            and give each tile the matching crop of its features (otherwise the prior runs on
            each tile). Default: False.
        prior_size (int): Longer side of the downscaled image of ``prior_global``. Default: 1024.
        device (torch.device | None): Where the network runs. Default: the model's device.
        progress (callable | None): Called as ``progress(done, total)`` after each tile (with
            ``prior_global`` and C2F the two tiled passes count as one run of ``2 * tiles``).
            Default: None.

    Returns:
        dict[str, Tensor]: ``out`` (1, 3, H, W) clamped to [0, 1], and with ``maps``
        ``illumination`` and ``reflectance`` (1, 3, H, W), float32 on the CPU.
    """
    if hasattr(model, 'enhance_tensor'):  # another backend (deploy.OrtEnhancer)
        return model.enhance_tensor(x, tile=tile, overlap=overlap, self_ens=self_ens, maps=maps, progress=progress)
    device = device or model.device
    net = model.get_bare_model(model.net_g)
    dtype = next(net.parameters()).dtype
    align = int(getattr(net, 'down_factor', 1))
    uses_prior = bool(getattr(net, 'use_semantics', False))
    whole = tile <= 0 or max(x.shape[-2:]) <= tile
    passes = 2 if prior_global and uses_prior and getattr(net, 'c2f', False) else 1
    passes_done = []

    def report(done, total):
        if progress is not None:
            progress(len(passes_done) * total + done, passes * total)

    def tiled(fn, with_box=False):
        if whole:  # exactly the untiled computation (no alignment padding)
            res = fn(x, (0, 0) + tuple(x.shape[-2:])) if with_box else fn(x)
            report(1, 1)
        else:
            res = tiled_forward(fn, x, tile, overlap, align=align, with_box=with_box, progress=report)
        passes_done.append(True)
        return res

    def run(t, feats=None):
        """One tile on the device: the prior on the tile and C2F, or one pass with ``feats``."""
        res = model.enhance(net, t.to(device, dtype), sem_feats=feats, c2f=feats is None, return_aux=maps)
        if maps:
            return torch.cat([res['out'], res['illumination'], res['reflectance']], dim=1).float()
        return res.float()

    def per_tile(t):
        return (self_ensemble(run, t) if self_ens else run(t)).cpu()

    def with_features(feats):
        """The tile function of one pass fed with crops of whole-image features ``feats``."""

        def fn(t, box):
            crop = crop_features(feats, box, x.shape[-2:])
            return (self_ensemble(run, t, crop) if self_ens else run(t, crop)).cpu()

        return fn

    def global_features(img):
        return model.sem_features(_downscale(img, prior_size).to(device, dtype))

    with torch.no_grad():
        if prior_global and uses_prior:
            res = tiled(with_features(global_features(x)), with_box=True)
            if getattr(net, 'c2f', False):  # C2F: the prior on the whole coarse result, a second pass
                c2f_features = getattr(model, 'c2f_features', model.sem_features)
                feats = c2f_features(_downscale(res[:, :3].clamp(0, 1), prior_size).to(device, dtype))
                del res
                res = tiled(with_features(feats), with_box=True)
        else:
            res = tiled(per_tile)
    out = {'out': res[:, :3].clamp_(0, 1)}
    if maps:
        out['illumination'] = res[:, 3:6]
        out['reflectance'] = res[:, 6:9]
    return out


# ---- pictures ----------------------------------------------------------------------------------
def segment_image(model, x, prior_size=1024):
    """The prior's segmentation of ``x``: run on it downscaled to ``prior_size``, classes
    upsampled (nearest) to ``x``'s size.

    Args:
        model (DeepSPGModel): From :func:`build_enhancer`, with a segmentation prior.
        x (Tensor): Low-light RGB (1, 3, H, W) in [0, 1], on the CPU.
        prior_size (int): Longer side the prior sees. Default: 1024.

    Returns:
        Tensor: Class indices (1, H, W), int64, on the CPU.
    """
    dtype = next(model.seg_prior.parameters()).dtype
    with torch.no_grad():
        classes = model.seg_prior.segment(_downscale(x, prior_size).to(model.device, dtype))
    return F.interpolate(classes[:, None].float(), size=x.shape[-2:], mode='nearest')[:, 0].long().cpu()


def colour_overlay(classes, out, num_classes, alpha=0.5):
    """Class indices (1, H, W) in :func:`seg_palette` colours blended over ``out`` (1, 3, H, W)."""
    colours = seg_palette(num_classes)[classes].permute(0, 3, 1, 2)
    return (1 - alpha) * out + alpha * colours


def segmentation_overlay(model, x, out, prior_size=1024, alpha=0.5):
    """The prior's segmentation of ``x`` (:func:`segment_image`) in palette colours, blended over
    ``out`` (both (1, 3, H, W), CPU)."""
    return colour_overlay(segment_image(model, x, prior_size), out, model.seg_prior.num_classes, alpha)


def _picture_path(output, folder, stem, suffix=''):
    return os.path.join(output, folder, f'{stem}{suffix}.png')


def run_enhancer(model, x, args, device=None, progress=None):
    """:func:`enhance_tensor` with the command line's options ``args`` (tiles, overlap,
    self-ensemble, ``--save-maps``, ``--prior-global``, ``--prior-size``): what
    ``deepspg-enhance`` and ``deepspg-app`` compute for one image.

    Args:
        model: From :func:`load_model`.
        x (Tensor): Low-light RGB (1, 3, H, W) float32 in [0, 1], on the CPU.
        args (argparse.Namespace): From :func:`parse_args` or :func:`default_args`.
        device (torch.device | None): Where the network runs. Default: the model's device.
        progress (callable | None): ``progress(done, total)`` per tile. Default: None.
    """
    return enhance_tensor(
        model,
        x,
        tile=args.tile,
        overlap=args.overlap,
        self_ens=args.self_ensemble,
        maps=args.save_maps,
        prior_global=args.prior_global,
        prior_size=args.prior_size,
        device=device,
        progress=progress,
    )


def process_file(model, path, args, device, stem=None):
    """Read, enhance and write one file (and its optional pictures, named after ``stem``, default
    the file's stem; see :func:`picture_stems`); returns the output path."""
    name = os.path.basename(path)
    out_path = os.path.join(args.output, name)
    if os.path.exists(out_path) and os.path.samefile(out_path, path):
        raise EnhanceError('the output would overwrite the input; choose another --output folder')
    x, record = read_image(path)
    res = run_enhancer(model, x, args, device)
    write_image(out_path, res['out'], record)
    stem = os.path.splitext(name)[0] if stem is None else stem
    rgb8 = ImageRecord()
    if args.save_compare:
        write_image(_picture_path(args.output, 'compare', stem), torch.cat([x, res['out']], dim=-1), rgb8)
    if args.save_maps:
        write_image(_picture_path(args.output, 'maps', stem, '_illumination'), res['illumination'], rgb8)
        write_image(_picture_path(args.output, 'maps', stem, '_reflectance'), res['reflectance'], rgb8)
    if args.save_seg:
        overlay = segmentation_overlay(model, x, res['out'], args.prior_size)
        write_image(_picture_path(args.output, 'seg', stem), overlay, rgb8)
    return out_path


def _describe(err):
    text = str(err)
    if isinstance(err, torch.cuda.OutOfMemoryError) or 'out of memory' in text.lower():
        return f'out of memory ({text.splitlines()[0] if text else type(err).__name__}); retry with --tile 512'
    return text if isinstance(err, (OSError, EnhanceError, ValueError)) else f'{type(err).__name__}: {text}'


# ---- command line --------------------------------------------------------------------------------
def build_parser():
    """The ``deepspg-enhance`` argument parser."""
    parser = argparse.ArgumentParser(
        prog='deepspg-enhance',
        description='Enhance low-light images with DeepSPG (files, folders or glob patterns).',
    )
    parser.add_argument('inputs', nargs='+', help='image files, folders (not recursive) or glob patterns')
    parser.add_argument('-opt', '--opt', dest='opt', help='test option file (network_g, prior, path)')
    parser.add_argument('--weights', help='enhancer checkpoint (net_g_*.pth); overrides path.pretrain_network_g')
    parser.add_argument(
        '--param-key', help="key of the weights in the checkpoint (default: path.param_key_g or 'params')"
    )
    parser.add_argument('--seg-checkpoint', help='segmentation prior checkpoint; overrides prior.seg_checkpoint')
    parser.add_argument('--allow-unsafe-checkpoint', action='store_true', help='unpickle trusted checkpoints')
    parser.add_argument(
        '--random-weights',
        action='store_true',
        help='untrained enhancer, ignoring path.pretrain_network_g (measurements)',
    )
    parser.add_argument('--output', '-o', required=True, help='output folder (results keep the input file names)')
    parser.add_argument('--tile', type=int, default=0, help='tile size in pixels; 0: whole image (default)')
    parser.add_argument('--overlap', type=int, default=None, help='minimum overlap of neighbouring tiles (default 64)')
    parser.add_argument('--prior-global', action='store_true', help='with tiles: run the prior once on the whole image')
    parser.add_argument('--prior-size', type=int, default=1024, help='longer side for --prior-global / --save-seg')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'], help='default: cuda if available')
    parser.add_argument('--half', action='store_true', help='fp16 inference (CUDA only)')
    parser.add_argument('--self-ensemble', action='store_true', help='average the 8 flips / rotations (8x slower)')
    parser.add_argument('--save-compare', action='store_true', help='also write compare/<name>.png: input | output')
    parser.add_argument(
        '--save-maps', action='store_true', help='also write maps/<name>_{illumination,reflectance}.png'
    )
    parser.add_argument('--save-seg', action='store_true', help='also write seg/<name>.png: segmentation overlay')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing results in --output (default: refuse)'
    )
    parser.add_argument(
        '--backend', default='torch', choices=['torch', 'onnxruntime'], help='torch (default) or onnxruntime'
    )
    parser.add_argument('--onnx', help='with --backend onnxruntime: the model written by deepspg-export')
    parser.add_argument('--threads', type=int, default=0, help='CPU threads (torch / onnxruntime); 0: default')
    return parser


def default_args(output, **options):
    """The enhancer's options as the command line gives them by default, with ``options`` set
    (for callers other than the command line, e.g. ``deepspg-app``).

    Args:
        output (str): The output folder (``--output``).
        **options: Attributes of :func:`parse_args`'s namespace, e.g. ``opt``, ``weights``,
            ``tile``, ``save_maps``, ``backend``, ``onnx``.

    Returns:
        argparse.Namespace: Checked as :func:`parse_args` checks the command line.

    Raises:
        EnhanceError: naming the option, for a value the command line would refuse.
    """
    parser = build_parser()
    args = parser.parse_args(['<inputs>', '--output', output])
    unknown = sorted(set(options) - set(vars(args)))
    if unknown:
        raise TypeError(f'unknown enhancer option(s) {unknown}')
    vars(args).update(options)
    problem = check_args(args)
    if problem:
        raise EnhanceError(problem)
    return args


def check_args(args):
    """The problem with the options ``args`` (a message naming the flag), or None; fills
    ``args.overlap`` (default 64) and ``args.overlap_is_default``."""
    if (args.backend == 'onnxruntime') != bool(args.onnx):
        return '--backend onnxruntime and --onnx FILE go together'
    if args.threads < 0:
        return '--threads must be >= 0'
    args.overlap_is_default = args.overlap is None or getattr(args, 'overlap_is_default', False)
    if args.overlap is None:
        args.overlap = OVERLAP_DEFAULT
    overlap = f'--overlap {args.overlap}' + (' (the default)' if args.overlap_is_default else '')
    if args.tile < 0 or args.overlap < 0:
        return f'need --tile >= 0 and --overlap >= 0, got --tile {args.tile}, {overlap}'
    if args.tile and args.overlap >= args.tile:
        return f'--tile {args.tile} must be larger than {overlap}; pass a smaller --overlap or a larger --tile'
    if args.prior_size < 16:
        return '--prior-size must be at least 16'
    return None


def parse_args(argv=None):
    """Parse and check the command line (errors exit with status 2, as argparse does)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = check_args(args)
    if problem:
        parser.error(problem)
    return args


def resolve_device(name, half):
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda' and not torch.cuda.is_available():
        raise EnhanceError('--device cuda: no CUDA device is available (use --device cpu)')
    if half and name != 'cuda':
        raise EnhanceError('--half runs fp16 on CUDA only; on the CPU drop --half (fp32)')
    return torch.device(name)


def check_tile(args, align):
    """Raise :class:`EnhanceError` when ``args.tile``, rounded down to a multiple of ``align`` (the
    network's down-sampling factor), does not exceed ``args.overlap`` by at least ``align``."""
    if args.tile and args.tile // align * align - args.overlap < align:
        default = ' (the default)' if getattr(args, 'overlap_is_default', False) else ''
        raise EnhanceError(
            f'--tile {args.tile} (rounded down to a multiple of {align}, the down-sampling factor) must '
            f'exceed --overlap {args.overlap}{default} by at least {align}'
        )


def model_align(model):
    """The down-sampling factor tiles are aligned to (torch model or ONNX Runtime backend)."""
    if hasattr(model, 'enhance_tensor'):  # deploy.OrtEnhancer
        return model.align
    return int(getattr(model.get_bare_model(model.net_g), 'down_factor', 1))


def load_model(args, device):
    """The enhancer ``args`` ask for: the ONNX Runtime backend for ``--backend onnxruntime``, else
    the PyTorch model (:func:`build_enhancer`), checked against ``--save-seg``, ``--save-maps`` and
    ``--tile``.

    Raises:
        EnhanceError: naming the option the model cannot serve (``CheckpointError`` and
            ``OSError`` for unreadable or mismatching files).
    """
    model = build_ort_enhancer(args) if args.backend == 'onnxruntime' else build_enhancer(args, device)
    net = model.get_bare_model(model.net_g) if args.backend == 'torch' else None
    if args.save_seg and model.seg_prior is None:
        raise EnhanceError('--save-seg needs a network with a segmentation prior (network_g.use_semantics)')
    if args.save_maps and net is not None and not hasattr(net, 'illumination'):
        raise EnhanceError(f'--save-maps needs a DeepSPG network, got {type(net).__name__}')
    check_tile(args, model_align(model))
    return model


def main(argv=None):
    """Run the command line; returns the exit status (0: all images written, 1: some failed,
    2: bad command line / model)."""
    from basicsr.utils import get_root_logger
    from tqdm import tqdm

    args = parse_args(argv)
    get_root_logger()  # BasicSR's logger: warnings (e.g. random prior weights) on stderr
    try:
        device = resolve_device(args.device, args.half)
        files, failures = collect_inputs(args.inputs)
        if not files:
            raise EnhanceError('no input images: ' + '; '.join(f'{p}: {m}' for p, m in failures))
        files, clashes = _unique_names(files)
        failures += clashes
        stems = picture_stems(files)
        check_output_folder(files, args, stems)
        if args.threads and args.backend == 'torch':
            torch.set_num_threads(args.threads)
        model = load_model(args, device)
        try:
            os.makedirs(args.output, exist_ok=True)
        except OSError as err:
            raise EnhanceError(f'--output {args.output}: cannot create the folder ({err})') from err
    except KeyboardInterrupt:
        print('deepspg-enhance: interrupted (Ctrl-C); nothing written', file=sys.stderr)
        return 130
    except Exception as err:  # command line, option file, checkpoints
        print(f'deepspg-enhance: error: {err}', file=sys.stderr)
        return 2
    for path, message in failures:
        print(f'deepspg-enhance: {path}: {message}', file=sys.stderr)
    requested = len(files) + len(failures)  # missing inputs and name clashes count as not written
    written = 0
    bar = tqdm(files, unit='image', disable=args.no_progress)
    try:
        for path in bar:
            bar.set_description(os.path.basename(path))
            try:
                process_file(model, path, args, device, stems[path])
                written += 1
            except Exception as err:  # one bad image must not stop the others
                message = _describe(err)
                failures.append((path, message))
                tqdm.write(f'deepspg-enhance: failed: {path}: {message}', file=sys.stderr)
    except KeyboardInterrupt:
        bar.close()
        print(
            f'deepspg-enhance: interrupted (Ctrl-C): {written} of {requested} images written to {args.output}',
            file=sys.stderr,
        )
        return 130
    bar.close()
    print(f'deepspg-enhance: {written} of {requested} images written to {args.output}', file=sys.stderr)
    if failures:
        print(f'deepspg-enhance: {len(failures)} failed:', file=sys.stderr)
        for path, message in failures:
            print(f'  {path}: {message}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
