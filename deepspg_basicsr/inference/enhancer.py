"""The one inference core: :class:`DeepSPGEnhancer` (``deepspg-enhance``, ``deepspg-app``,
``deepspg-export`` and ``deepspg-bench`` all build on it).

Example::

    import cv2
    from deepspg_basicsr import DeepSPGEnhancer

    enhancer = DeepSPGEnhancer('options/test_DeepSPG_demo.yml', weights='net_g_latest.pth', tile=512)
    cv2.imwrite('bright.png', enhancer.enhance(cv2.imread('dark.png', cv2.IMREAD_UNCHANGED)))

Images are enhanced whole or in overlapping tiles blended without seams
(:func:`~deepspg_basicsr.utils.tiling.tiled_forward`). With tiles the segmentation prior sees one
tile at a time, or, with ``prior_global``, runs once on the whole image downscaled to
``prior_size`` and each tile gets the matching crop of those features (both C2F passes).
"""

import os

import torch
import torch.nn.functional as F

from ..utils.class_names import seg_palette
from ..utils.self_ensemble import self_ensemble
from ..utils.tiling import tiled_forward
from ..weights.known_weights import DEFAULT_ENHANCER
from .image_kinds import from_tensor, to_tensor
from .options import EnhanceError, load_option_file, model_options, read_weights_record, resolve_weights_path

__all__ = ['DeepSPGEnhancer', 'check_run_options', 'colour_overlay', 'crop_features', 'resolve_device']

#: Default minimum overlap of neighbouring tiles (pixels).
OVERLAP_DEFAULT = 64


def resolve_device(name='auto', half=False):
    """``auto`` -> CUDA when available, else the CPU; refuses CUDA without a device and fp16 on the CPU."""
    name = str(name)
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise EnhanceError('--device cuda: no CUDA device is available (use --device cpu)')
    if half and not name.startswith('cuda'):
        raise EnhanceError('--half runs fp16 on CUDA only; on the CPU drop --half (fp32)')
    return torch.device(name)


def check_run_options(tile, overlap, prior_size=1024, threads=0, overlap_is_default=False):
    """The problem with these run options (a message naming the flag), or None."""
    shown = f'--overlap {overlap}' + (' (the default)' if overlap_is_default else '')
    if tile < 0 or overlap < 0:
        return f'need --tile >= 0 and --overlap >= 0, got --tile {tile}, {shown}'
    if tile and overlap >= tile:
        return f'--tile {tile} must be larger than {shown}; pass a smaller --overlap or a larger --tile'
    if prior_size < 16:
        return '--prior-size must be at least 16'
    if threads < 0:
        return '--threads must be >= 0'
    return None


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


def colour_overlay(classes, out, num_classes, alpha=0.5):
    """Class indices (1, H, W) in :func:`~deepspg_basicsr.utils.class_names.seg_palette` colours
    blended over ``out`` (1, 3, H, W)."""
    colours = seg_palette(num_classes)[classes].permute(0, 3, 1, 2)
    return (1 - alpha) * out + alpha * colours


def build_torch_model(opt, random_weights=False):
    """The BasicSR model of ``opt`` (the same untrained weights on every run with ``random_weights``)."""
    from basicsr.models import build_model

    if not random_weights:
        return build_model(opt)
    from basicsr.utils import get_root_logger

    get_root_logger().warning('!!! --random-weights: THE ENHANCER IS UNTRAINED; outputs are for measurements !!!')
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_model(opt)


class DeepSPGEnhancer:
    """A trained DeepSPG (or an exported ONNX model) that enhances images.

    Built from an option file and / or a weights file, a known weights name, or an exported ONNX
    model; :meth:`enhance` takes NumPy arrays, PIL images and tensors.

    Args:
        opt (str | dict | None): Option file (YAML; checked: unknown or misspelt keys are named
            with the nearest known one) or its contents: ``network_g``, ``prior``, ``path``
            (``pretrain_network_g``, ``param_key_g``). None: the weights file's own record, or the
            DeepSPG base preset. Default: None.
        weights (str | None): Enhancer weights: a BasicSR checkpoint, a self-describing weights file
            (:func:`~deepspg_basicsr.inference.options.save_weights`), or a known name. None: the
            option file's ``path.pretrain_network_g``; without an option file, the model that ships
            with the package (``deepspg-espnetv2-photos``, docs/MODEL.md). Default: None.
        device (str | torch.device): ``auto`` (CUDA if available), ``cpu`` or ``cuda``. Default: auto.
        half (bool): fp16 on CUDA. Default: False.
        tile (int): Tile size in pixels; 0: whole images. Default: 0.
        overlap (int | None): Minimum overlap of neighbouring tiles; None: 64. Default: None.
        self_ensemble (bool): Average the 8 flips / rotations (8x slower). Default: False.
        seg_scale (float | None): The prior runs on the input resized by this factor (overrides
            ``prior.seg_scale``). Default: None.
        prior_global (bool): With tiles, run the prior once on the whole image. Default: False.
        prior_size (int): Longer side the prior sees for ``prior_global`` and :meth:`segment`.
            Default: 1024.
        param_key (str | None): Key of the weights in the checkpoint. Default: the option file's
            ``path.param_key_g``, the record's, or ``params``.
        seg_checkpoint (str | None): Segmentation prior checkpoint (overrides ``prior.seg_checkpoint``).
        allow_unsafe_checkpoint (bool): Unpickle trusted checkpoints. Default: False.
        random_weights (bool): An untrained enhancer, seed 0 (measurements only). Default: False.
        onnx (str | None): A model written by ``deepspg-export``: the ONNX Runtime backend instead
            of PyTorch (no ``half``, ``prior_global``, ``seg_scale`` or :meth:`segment`). Default: None.
        threads (int): CPU threads (torch's, set process-wide; or ONNX Runtime's); 0: the default.
        fold_prior_bn (bool): Fold the prior's BatchNorms into its convolutions. Default: True.

    Raises:
        EnhanceError: naming the option (and its command-line flag) for a bad value or file.
        OptionError: naming the option file and each unknown or misspelt key.
    """

    def __init__(
        self,
        opt=None,
        weights=None,
        device='auto',
        half=False,
        tile=0,
        overlap=None,
        self_ensemble=False,
        seg_scale=None,
        prior_global=False,
        prior_size=1024,
        param_key=None,
        seg_checkpoint=None,
        allow_unsafe_checkpoint=False,
        random_weights=False,
        onnx=None,
        threads=0,
        fold_prior_bn=True,
    ):
        self.overlap_is_default = overlap is None
        self.tile, self.overlap = int(tile), OVERLAP_DEFAULT if overlap is None else int(overlap)
        self.self_ensemble, self.prior_global, self.prior_size = bool(self_ensemble), bool(prior_global), prior_size
        self.half = bool(half)
        self._check_run_options(threads)
        self.option_file = opt if isinstance(opt, (str, os.PathLike)) else None
        self.opt = self._options(opt)
        self.backend = 'onnxruntime' if onnx else 'torch'
        self.onnx = onnx
        if onnx:
            self._init_onnx(onnx, threads, device, seg_scale)
        else:
            self._init_torch(weights, device, threads, seg_scale, param_key, seg_checkpoint, allow_unsafe_checkpoint)
            self._init_model(random_weights, fold_prior_bn)
        self.check_tile(self.tile)

    @classmethod
    def from_model(cls, model, **options):
        """Wrap a built ``DeepSPGModel`` (or a subclass) with the run options ``tile``, ``overlap``,
        ``self_ensemble``, ``prior_global``, ``prior_size`` (for tests and benchmarks)."""
        self = cls.__new__(cls)
        self.overlap_is_default = options.get('overlap') is None
        self.tile = int(options.get('tile', 0))
        self.overlap = OVERLAP_DEFAULT if options.get('overlap') is None else int(options['overlap'])
        self.self_ensemble = bool(options.get('self_ensemble', False))
        self.prior_global = bool(options.get('prior_global', False))
        self.prior_size = options.get('prior_size', 1024)
        self.half, self.backend, self.onnx, self.option_file = False, 'torch', None, None
        self._check_run_options(0)
        self.opt, self.model, self.device = model.opt, model, model.device
        self.weights = (model.opt.get('path') or {}).get('pretrain_network_g')
        self._describe_model()
        self.check_tile(self.tile)
        return self

    # ---- building -----------------------------------------------------------------------------
    def _check_run_options(self, threads):
        problem = check_run_options(self.tile, self.overlap, self.prior_size, threads, self.overlap_is_default)
        if problem:
            raise EnhanceError(problem)

    @staticmethod
    def _options(opt):
        if opt is None:
            return {}
        if isinstance(opt, dict):
            from ..utils.options_check import OptionError
            from .options import find_inference_problems

            problems = find_inference_problems(opt)
            if problems:
                raise OptionError(problems, '<options dict>')
            return opt
        return load_option_file(os.fspath(opt))

    def _init_onnx(self, path, threads, device, seg_scale):
        from ..deploy.ort_backend import OrtEnhancer

        refused = [flag for flag, on in (('--half', self.half), ('--prior-global', self.prior_global)) if on]
        if seg_scale is not None:
            refused.append('seg_scale (fixed when the model is exported)')
        if refused:
            raise EnhanceError(f'{", ".join(refused)}: not available with --backend onnxruntime (use --backend torch)')
        self.model = OrtEnhancer(path, threads=threads, device=str(device))
        self.device, self.weights, self.seg_prior, self.align = torch.device('cpu'), None, None, self.model.align
        self.has_maps = True
        meta = self.model.session.metadata
        self.random_weights = {
            'enhancer': bool(meta.get('random_enhancer_weights')),
            'prior': bool((meta.get('prior') or {}).get('random_weights')),
        }

    def _init_torch(self, weights, device, threads, seg_scale, param_key, seg_checkpoint, allow_unsafe):
        self.device = resolve_device(device, self.half)
        if threads:
            torch.set_num_threads(threads)
        self._model_args = dict(
            param_key=param_key,
            seg_checkpoint=seg_checkpoint,
            allow_unsafe_checkpoint=allow_unsafe,
            self_ensemble=self.self_ensemble,
            seg_scale=seg_scale,
        )
        self._weights_arg = weights

    def _init_model(self, random_weights, fold_prior_bn):
        paths = self.opt.get('path') or {}
        if random_weights and self._weights_arg:
            raise EnhanceError('--random-weights and --weights exclude each other')
        weights = None if random_weights else self._weights_arg or paths.get('pretrain_network_g')
        if weights is None and not random_weights and not self.opt:
            weights = DEFAULT_ENHANCER  # neither an option file nor weights: the model that ships
        if weights is None and not random_weights:
            raise EnhanceError(
                'no enhancer weights: pass --weights net_g.pth or set path.pretrain_network_g in the option file '
                '(--random-weights runs an untrained network, for measurements only)'
            )
        self.weights = resolve_weights_path(weights)
        allow = self._model_args['allow_unsafe_checkpoint'] or paths.get('allow_unsafe_checkpoint', False)
        record = None if self.weights is None else read_weights_record(self.weights, allow)
        self.info = dict((record or {}).get('info') or {})
        self.weights_name = weights if self.weights != weights else None
        num_gpu = 1 if self.device.type == 'cuda' else 0
        opt = model_options(
            self.opt, self.weights, record, num_gpu=num_gpu, fold_prior_bn=fold_prior_bn, **self._model_args
        )
        model = build_torch_model(opt, random_weights=self.weights is None)
        if not hasattr(model, 'enhance'):
            raise EnhanceError(f'model_type {type(model).__name__} has no enhance(); use DeepSPGModel or a subclass')
        model.net_g.eval()
        if self.weights is not None:
            from basicsr.utils import get_root_logger

            get_root_logger().info(f'Enhancer: {self.describe()}')
        if self.half:
            model.net_g.half()
            if model.seg_prior is not None:
                model.seg_prior.half()
            if getattr(model, 'text_tokens', None) is not None:
                model.text_tokens = model.text_tokens.half()
        self.model = model
        self._describe_model()

    def _describe_model(self):
        model = self.model
        self.net = model.get_bare_model(model.net_g)
        self.seg_prior = model.seg_prior
        self.align = int(getattr(self.net, 'down_factor', 1))
        self.has_maps = hasattr(self.net, 'illumination')
        prior = self.seg_prior
        self.random_weights = {
            'enhancer': (model.opt.get('path') or {}).get('pretrain_network_g') is None,
            'prior': prior is not None and bool(getattr(prior, 'random_init', False)),
        }

    def describe(self):
        """One line: which enhancer runs (its known name, what it was trained on) and its file."""
        if self.backend == 'onnxruntime':
            return f'the ONNX model {self.onnx}'
        if self.weights is None:
            return 'an UNTRAINED enhancer (random weights)'
        info = getattr(self, 'info', {})
        name = getattr(self, 'weights_name', None) or info.get('name')
        head = f'{name}: ' if name else ''
        trained = f'trained on {info["trained_on"]}; ' if info.get('trained_on') else ''
        card = f' ({info["model_card"]})' if info.get('model_card') else ''
        return f'{head}{trained}weights {self.weights}{card}'

    def check_tile(self, tile):
        """Raise :class:`EnhanceError` when ``tile``, rounded down to a multiple of the network's
        down-sampling factor, does not exceed the overlap by at least that factor."""
        if tile and tile // self.align * self.align - self.overlap < self.align:
            default = ' (the default)' if self.overlap_is_default else ''
            raise EnhanceError(
                f'--tile {tile} (rounded down to a multiple of {self.align}, the down-sampling factor) must '
                f'exceed --overlap {self.overlap}{default} by at least {self.align}'
            )

    # ---- enhancement --------------------------------------------------------------------------
    def enhance(self, image, channel_order='bgr', maps=False, segmentation=False, tile=None, progress=None):
        """Enhance one image, returned in the kind, sample type and channel order it came in.

        Args:
            image (ndarray | PIL.Image.Image | Tensor): A NumPy array (H, W) grey, (H, W, 1|2|3|4)
                (grey, grey + alpha, colour, colour + alpha), uint8 / uint16 / float in [0, 1];
                a PIL image (L, LA, RGB, RGBA, I;16, F; others converted to RGB(A)); or a float
                tensor, RGB in [0, 1], (3, H, W) or (B, 3, H, W). Alpha is kept aside, never
                enhanced, and re-attached.
            channel_order (str): ``bgr`` (OpenCV's, the default) or ``rgb``: the colour order of a
                NumPy array (PIL images and tensors are RGB).
            maps (bool): Also return the illumination and reflectance (DeepSPG). Default: False.
            segmentation (bool): Also return the prior's class indices. Default: False.
            tile (int | None): Tile size for this image; None: the constructor's. Default: None.
            progress (callable | None): ``progress(done, total)`` per tile. Default: None.

        Returns:
            The enhanced image; with ``maps`` or ``segmentation`` a dict: ``image``, and
            ``illumination`` / ``reflectance`` (float32, (H, W, 3) arrays in ``channel_order``
            for NumPy and PIL inputs, tensors like the input's; reflectance not clipped) and
            ``segmentation`` (class indices (H, W) int64, array or tensor).
        """
        x, kind = to_tensor(image, channel_order)
        outs = []
        for i in range(x.shape[0]):
            res = self.enhance_tensor(x[i : i + 1], maps=maps, tile=tile, progress=progress)
            if segmentation:
                res['segmentation'] = self.segment(x[i : i + 1])
            outs.append(res)
        return from_tensor(outs, kind, maps, segmentation)

    def enhance_tensor(self, x, maps=False, tile=None, progress=None):
        """Enhance (1, 3, H, W) float32 RGB in [0, 1] (on the CPU); returns ``out`` clamped to [0, 1]
        and with ``maps`` ``illumination``, ``reflectance`` (each (1, 3, H, W), float32, CPU)."""
        tile = self.tile if tile is None else int(tile)
        if tile != self.tile:
            self.check_tile(tile)
        if self.backend == 'onnxruntime':
            return self.model.enhance_tensor(
                x, tile=tile, overlap=self.overlap, self_ens=self.self_ensemble, maps=maps, progress=progress
            )
        if maps and not self.has_maps:
            raise EnhanceError(f'--save-maps needs a DeepSPG network, got {type(self.net).__name__}')
        return self._enhance_torch(x, tile, maps, progress)

    def _enhance_torch(self, x, tile, maps, progress):
        model, net, device = self.model, self.net, self.device
        dtype = next(net.parameters()).dtype
        uses_prior = bool(getattr(net, 'use_semantics', False))
        whole = tile <= 0 or max(x.shape[-2:]) <= tile
        passes = 2 if self.prior_global and uses_prior and getattr(net, 'c2f', False) else 1
        passes_done = []

        def report(done, total):
            if progress is not None:
                progress(len(passes_done) * total + done, passes * total)

        def tiled(fn, with_box=False):
            if whole:  # exactly the untiled computation (no alignment padding)
                res = fn(x, (0, 0) + tuple(x.shape[-2:])) if with_box else fn(x)
                report(1, 1)
            else:
                res = tiled_forward(fn, x, tile, self.overlap, align=self.align, with_box=with_box, progress=report)
            passes_done.append(True)
            return res

        def run(t, feats=None):
            """One tile on the device: the prior on the tile and C2F, or one pass with ``feats``."""
            res = model.enhance(net, t.to(device, dtype), sem_feats=feats, c2f=feats is None, return_aux=maps)
            if maps:
                return torch.cat([res['out'], res['illumination'], res['reflectance']], dim=1).float()
            return res.float()

        def one(t, feats=None):
            extra = () if feats is None else (feats,)
            return (self_ensemble(run, t, *extra) if self.self_ensemble else run(t, *extra)).cpu()

        def with_features(feats):
            """The tile function of one pass fed with crops of whole-image features ``feats``."""
            return lambda t, box: one(t, crop_features(feats, box, x.shape[-2:]))

        with torch.no_grad():
            if self.prior_global and uses_prior:
                feats = model.sem_features(_downscale(x, self.prior_size).to(device, dtype))
                res = tiled(with_features(feats), with_box=True)
                if getattr(net, 'c2f', False):  # C2F: the prior on the whole coarse result, a second pass
                    c2f_features = getattr(model, 'c2f_features', model.sem_features)
                    feats = c2f_features(_downscale(res[:, :3].clamp(0, 1), self.prior_size).to(device, dtype))
                    del res
                    res = tiled(with_features(feats), with_box=True)
            else:
                res = tiled(one)
        out = {'out': res[:, :3].clamp_(0, 1)}
        if maps:
            out['illumination'], out['reflectance'] = res[:, 3:6], res[:, 6:9]
        return out

    def segment(self, x):
        """The prior's segmentation of ``x`` (1, 3, H, W) in [0, 1] (CPU): run on it downscaled to
        ``prior_size``, classes upsampled (nearest) to its size; (1, H, W) int64 on the CPU."""
        if self.seg_prior is None:
            needs = 'the torch backend' if self.backend == 'onnxruntime' else 'a network with a segmentation prior'
            raise EnhanceError(f'--save-seg needs {needs} (network_g.use_semantics)')
        dtype = next(self.seg_prior.parameters()).dtype
        with torch.no_grad():
            classes = self.seg_prior.segment(_downscale(x, self.prior_size).to(self.model.device, dtype))
        return F.interpolate(classes[:, None].float(), size=x.shape[-2:], mode='nearest')[:, 0].long().cpu()

    def segmentation_overlay(self, x, out, alpha=0.5):
        """:meth:`segment` of ``x`` in palette colours blended over ``out`` (both (1, 3, H, W), CPU)."""
        return colour_overlay(self.segment(x), out, self.seg_prior.num_classes, alpha)
