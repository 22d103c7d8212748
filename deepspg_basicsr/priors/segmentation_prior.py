"""Frozen semantic segmentation prior built through MMSegmentation's own config files."""

import copy
import logging
from os import path as osp

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.checkpoint import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint_file,
    load_state_dict_strict,
)
from ..weights import complete_prior_options, locate_weights
from .hrnet_features import hrnet_branches, is_mmseg_hrnet

logger = logging.getLogger('basicsr')

DEFAULT_SEG_CONFIG = 'hrnet/fcn_hr48_4xb4-160k_ade20k-512x512.py'
#: ImageNet statistics in [0, 1], RGB (MMSegmentation's data preprocessor uses them x 255).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


#: Configs this package ships (``espnetv2/...``), looked up before MMSegmentation's own.
PACKAGE_CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), 'configs')


def resolve_mmseg_config(config):
    """Path of an MMSegmentation config: an existing file, or a name relative to this package's
    configs (``deepspg_basicsr/priors/configs``, e.g. ``espnetv2/espnetv2_s2.0_pascal-384x384.py``)
    or to the configs shipped in the mmsegmentation wheel (``mmseg/.mim/configs``)."""
    if osp.isfile(config):
        return config
    import mmseg

    roots = [PACKAGE_CONFIGS, osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')]
    for root in roots:
        if osp.isfile(osp.join(root, config)):
            return osp.join(root, config)
    raise FileNotFoundError(f'MMSegmentation config not found: {config!r} (neither a file nor under {roots})')


def _sync_bn_to_bn(cfg):
    """Return a copy of a config (nested dicts/lists) with every ``SyncBN`` norm turned into ``BN``:
    a frozen prior runs on one device, and SyncBN needs a process group."""
    if isinstance(cfg, dict):
        out = {k: _sync_bn_to_bn(v) for k, v in cfg.items()}
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_sync_bn_to_bn(v) for v in cfg)
    return cfg


def build_mmseg_parts(config):
    """Build the backbone and decode head of an MMSegmentation encoder-decoder config.

    Args:
        config (str): Config file or name under ``mmseg/.mim/configs``.

    Returns:
        tuple[nn.Module, nn.Module, dict]: backbone, decode head and the model config used.
    """
    import mmseg.models  # noqa: F401  (fills mmseg's MODELS registry)
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from . import espnetv2  # noqa: F401  (registers this package's ESPNetv2 backbone and head)

    cfg = Config.fromfile(resolve_mmseg_config(config))
    model_cfg = _sync_bn_to_bn(cfg.model.to_dict())
    backbone_cfg = dict(model_cfg['backbone'], init_cfg=None)
    backbone_cfg.pop('pretrained', None)
    head_cfg = dict(model_cfg['decode_head'], init_cfg=None)
    return MODELS.build(backbone_cfg), MODELS.build(head_cfg), model_cfg


class SegmentationPrior(nn.Module):
    """Frozen MMSegmentation network (default HRNet-W48 + FCN head, ADE20K, 150 classes).

    ImageNet normalisation is done inside, on RGB input in [0, 1]. The module stays in eval mode
    and has no trainable parameters, whatever ``.train()`` is called with; gradients can still
    flow through it to its input (for the semantic KL loss).

    State-dict keys are MMSegmentation's (``backbone.*``, ``decode_head.*``), so an official
    checkpoint loads as it is.

    Args:
        config (str): MMSegmentation config name (under the wheel's ``configs/``) or path.
            Default: ``hrnet/fcn_hr48_4xb4-160k_ade20k-512x512.py``.
        checkpoint (str | None): MMSegmentation checkpoint (``state_dict`` inside, or a bare
            state dict), a published ESPNetv2 file, or a known weights name such as
            ``espnetv2-pascal`` (:data:`~deepspg_basicsr.weights.KNOWN_WEIGHTS`: packaged or
            downloaded once, sha256-verified). None: random weights, with a loud warning.
        out_branches (list[int]): Which backbone outputs to return. Default: all four.
        allow_unsafe_checkpoint (bool): Unpickle arbitrary objects from a trusted checkpoint
            (``weights_only=False``). Default: False.
        random_seed (int): Seed of the random weights when there is no checkpoint, drawn from a
            forked RNG: training and testing runs rebuild the same random prior whatever the
            global RNG state. Default: 0.
        exposure_target (float | None): Brighten (or darken) each image so that its mean value is
            this before the prior sees it (one gain per image, at most ``max_gain``, then clipped to
            [0, 1]): the prior then sees a dark photo at a normal exposure, whatever its darkening, and
            its features change less with the exposure. None: the image as given. Default: None.
        max_gain (float): Largest gain of ``exposure_target``. Default: 50.
    """

    def __init__(
        self,
        config=DEFAULT_SEG_CONFIG,
        checkpoint=None,
        out_branches=(0, 1, 2, 3),
        allow_unsafe_checkpoint=False,
        random_seed=0,
        exposure_target=None,
        max_gain=50.0,
    ):
        super().__init__()
        self.config = config
        if exposure_target is not None and not 0 < float(exposure_target) <= 1:
            raise ValueError(f'prior.seg_exposure_target must be in (0, 1] or null, got {exposure_target!r}')
        self.exposure_target = None if exposure_target is None else float(exposure_target)
        self.max_gain = float(max_gain)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_seed)
            self.backbone, self.decode_head, model_cfg = build_mmseg_parts(config)
        self.num_classes = model_cfg['decode_head']['num_classes']
        in_channels = model_cfg['decode_head'].get('in_channels')
        self.branch_channels = list(in_channels) if isinstance(in_channels, (list, tuple)) else [in_channels]
        self.out_branches = [int(b) for b in out_branches]
        bad = [b for b in self.out_branches if not 0 <= b < len(self.branch_channels)]
        if bad:
            raise ValueError(f'out_branches {bad} out of range for {config} ({len(self.branch_channels)} branches)')
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        #: The local checkpoint file (a known name resolved), its sha256, and the name as given.
        self.checkpoint = self.checkpoint_sha256 = None
        self.checkpoint_name = checkpoint
        self.random_init = checkpoint is None
        if checkpoint is None:
            logger.warning(
                '!!! SEMANTIC PRIOR %s HAS RANDOM WEIGHTS: no checkpoint given. Its features and '
                'segmentation are meaningless; results are NOT comparable to the paper. Set '
                'prior.seg_checkpoint to a known weights name (espnetv2-pascal ships with the package; '
                'docs/WEIGHTS.md) or to a checkpoint file (MMSegmentation, or a published ESPNetv2 file). !!!',
                config,
            )
        else:
            resolved = locate_weights(checkpoint, kind='segmentation')
            self.checkpoint, self.checkpoint_sha256 = resolved.path, resolved.sha256
            self.load_checkpoint(resolved.path, allow_unsafe=allow_unsafe_checkpoint)
            entry = resolved.entry
            logger.info(
                'Semantic prior %s: checkpoint %s%s, sha256 %s',
                config,
                resolved.path,
                '' if entry is None else f' (known weights {entry.name}, {entry.checked} verified)',
                resolved.sha256,
            )
        self.requires_grad_(False)
        super().train(False)

    @property
    def out_channels(self):
        """Channels of the returned branches, e.g. [48, 96, 192, 384] for HRNet-W48."""
        return [self.branch_channels[b] for b in self.out_branches]

    def load_checkpoint(self, path, allow_unsafe=False):
        """Load MMSegmentation weights; a missing, unreadable or mismatching file raises
        :class:`CheckpointError` naming the file (and the first mismatching keys)."""
        from .espnetv2 import convert_published_checkpoint

        state = extract_state_dict(load_checkpoint_file(path, allow_unsafe=allow_unsafe), path, keys=('state_dict',))
        state = convert_published_checkpoint(state) or state  # ESPNetv2 files as published
        state = {k: v for k, v in state.items() if k.startswith(('backbone.', 'decode_head.'))}
        if not state:
            raise CheckpointError(
                f'checkpoint {path} has no backbone.* / decode_head.* keys (nor base_net.*): not an MMSegmentation '
                'model or a published ESPNetv2 segmentation model'
            )
        load_state_dict_strict(self, state, path)

    def train(self, mode=True):
        """Frozen: always stays in eval mode (BN statistics and dropout fixed)."""
        return super().train(False)

    def normalize(self, x):
        """(B, 3, H, W) in [0, 1] -> the backbone's input: the exposure gain (``exposure_target``), then
        ImageNet's mean and std."""
        if self.exposure_target is not None:
            level = x.mean(dim=(1, 2, 3), keepdim=True).clamp(min=self.exposure_target / self.max_gain)
            x = (x * (self.exposure_target / level)).clamp(0, 1)
        return (x - self.mean) / self.std

    def forward(self, x, return_logits=True, branches=None):
        """Run the prior.

        Args:
            x (Tensor): RGB images in [0, 1], shape (B, 3, H, W), any H and W.
            return_logits (bool): Also run the decode head. Default: True.
            branches (list[int] | None): Without logits, compute only these backbone branches
                (HRNet: the last fuse skips the others, :func:`~.hrnet_features.hrnet_branches`;
                same values) and return them in this order. None: ``out_branches``.

        Returns:
            dict: ``feats``: list of the selected backbone outputs, branch ``i`` of shape
            (B, C_i, ceil(H / 2^(i+2)), ceil(W / 2^(i+2))); ``logits``: (B, num_classes, H/4, W/4)
            class scores at the first branch's resolution (only with ``return_logits``).
        """
        if branches is not None and not return_logits:
            if is_mmseg_hrnet(self.backbone):
                return {'feats': hrnet_branches(self.backbone, self.normalize(x), list(branches))}
            feats = self.backbone(self.normalize(x))
            return {'feats': [feats[b] for b in branches]}
        feats = self.backbone(self.normalize(x))
        out = {'feats': [feats[b] for b in self.out_branches]}
        if return_logits:
            out['logits'] = self.decode_head(list(feats))
        return out

    def segment(self, x):
        """Per-pixel class index at the input resolution, shape (B, H, W)."""
        logits = self.forward(x)['logits']
        return F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False).argmax(1)


def build_segmentation_prior(opt):
    """Build a :class:`SegmentationPrior` from an options dict (not mutated).

    Keys: ``seg_config``, ``seg_checkpoint`` (a file or a known weights name; a name also supplies a
    missing ``seg_config``, :func:`~deepspg_basicsr.weights.complete_prior_options`),
    ``seg_out_branches``, ``allow_unsafe_checkpoint``, ``random_seed``, ``seg_exposure_target``.
    """
    opt = complete_prior_options(copy.deepcopy(opt or {}))
    return SegmentationPrior(
        config=opt.get('seg_config', DEFAULT_SEG_CONFIG),
        checkpoint=opt.get('seg_checkpoint'),
        out_branches=opt.get('seg_out_branches', (0, 1, 2, 3)),
        allow_unsafe_checkpoint=opt.get('allow_unsafe_checkpoint', False),
        random_seed=opt.get('random_seed', 0),
        exposure_target=opt.get('seg_exposure_target'),
    )
