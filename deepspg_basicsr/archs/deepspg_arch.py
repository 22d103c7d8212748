"""DeepSPG: Retinex-based low-light enhancement guided by a frozen semantic prior.

The frozen priors live outside this module: the network receives the semantic features as an
input (and, for the coarse-to-fine pass, a callable that runs the prior), so EMA, saving and
parameter counts cover the enhancer alone.
"""

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .filter_head import FilterHead
from .gated_block import GatedBlock
from .global_exposure import GlobalExposure
from .sem_block import SemanticEmbeddingModule
from .text_guidance import MultiLevelFusion, TextConditionedAttention


def pad_to_multiple(x, multiple):
    """Reflect-pad (replicate where reflect cannot) the bottom/right of (B, C, H, W) to multiples."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = 'reflect' if ph < h and pw < w else 'replicate'
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def set_padding_mode(module, mode):
    """Set ``padding_mode`` of every padded ``nn.Conv2d`` in ``module`` (state dict unchanged).

    ``'replicate'`` repeats the border pixel, so a constant map stays constant up to the border;
    ``'zeros'`` (PyTorch's default) surrounds each feature map with zeros, which the network
    sees as a dark frame (see :class:`DeepSPG`, ``padding_mode``).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and isinstance(m.padding, tuple) and any(p > 0 for p in m.padding):
            m.padding_mode = mode


class ResBlock(nn.Module):
    """conv3x3 - LeakyReLU - conv3x3 + identity."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class Stage(nn.ModuleList):
    """A sequence of blocks at one scale; gated blocks built with a guide receive it."""

    def forward(self, x, guide=None):
        for block in self:
            x = block(x, guide) if isinstance(block, GatedBlock) and block.guide is not None else block(x)
        return x


def make_stage(block_type, channels, num_blocks, kernel_size=3, guide_channels=0):
    """``num_blocks`` blocks of ``block_type`` ('residual' or 'gated') at ``channels``."""
    if block_type == 'residual':
        return Stage([ResBlock(channels) for _ in range(num_blocks)])
    return Stage([GatedBlock(channels, kernel_size, guide_channels) for _ in range(num_blocks)])


class IlluminationEstimator(nn.Module):
    """Estimate an RGB illumination map L in [floor, 1] and guidance features.

    Args:
        num_feat (int): Feature width. Default: 16.
        floor (float): Lower bound of L, keeps R = I / L finite. Default: 0.05.
        global_context (bool): Add a projection of the features' image-wide mean to every pixel's
            features (starts at zero): a 9-pixel receptive field alone cannot tell how dark the whole
            photo is. Default: False.
    """

    def __init__(self, num_feat=16, floor=0.05, global_context=False):
        super().__init__()
        self.floor = floor
        self.conv_in = nn.Conv2d(4, num_feat, 3, 1, 1)
        self.conv_mid = nn.Conv2d(num_feat, num_feat, 5, 1, 2, groups=num_feat)
        self.conv_out = nn.Conv2d(num_feat, 3, 3, 1, 1)
        self.global_context = nn.Conv2d(num_feat, num_feat, 1) if global_context else None
        if self.global_context is not None:
            nn.init.zeros_(self.global_context.weight)
            nn.init.zeros_(self.global_context.bias)

    def forward(self, x):
        """x: (B, 3, H, W) in [0, 1]. Returns L (B, 3, H, W) and features (B, num_feat, H, W)."""
        feat = F.leaky_relu(self.conv_in(torch.cat([x, x.max(dim=1, keepdim=True)[0]], dim=1)), 0.2)
        feat = feat + F.leaky_relu(self.conv_mid(feat), 0.2)
        if self.global_context is not None:
            feat = feat + self.global_context(feat.mean(dim=(2, 3), keepdim=True))
        illum = torch.sigmoid(self.conv_out(feat)).clamp(min=self.floor)
        return illum, feat


@ARCH_REGISTRY.register()
class DeepSPG(nn.Module):
    """DeepSPG enhancer (frozen priors excluded).

    Pipeline: illumination estimation L and Retinex decomposition R0 = I / L; a three-scale
    reflectance U-Net (widths C, 2C, 4C) whose decoder fuses one semantic branch per scale
    through a :class:`SemanticEmbeddingModule` (scale 1/4 <- ``sem_channels[2]``, 1/2 <- [1],
    1 <- [0]; with HRNet-W48 the 48 / 96 / 192-channel branches at strides 4 / 8 / 16);
    the reflectance head, by default the :class:`~.filter_head.FilterHead` (R is a per-pixel mix of R0
    smoothed by fixed Gaussians, plus a residual: the noise that the division amplifies is removed where
    it is born; ``head: residual``, R = R0 + conv(features), is the earlier head); recomposition
    ``out = R * L ** gamma`` with a learned exponent (starting near 0, i.e. ``out ~ R``); the exposure
    head, a photo-wide gain per colour channel from the deepest decoder level's pooled features
    (:class:`~.global_exposure.GlobalExposure`); and, given a prior, the coarse-to-fine pass: the
    prior is run again on the coarse result and the input is enhanced again with those features.

    Presets (fvcore at 1x3x256x256, GFLOPs = total / 1024**3, priors excluded; see
    ``deepspg-bench sizes``): base ``num_feat: 16, illum_feat: 16`` (0.594 M parameters,
    6.51 GFLOPs; published 0.55 M / 6.91 G); large ``num_feat: 32, illum_feat: 32`` (2.31 M,
    25.4 G; published 2.13 M / 26.03 G). The filter head adds 0.4 k parameters and 0.03 GFLOPs to
    the residual head, the exposure head 2.3 k parameters (base).

    Args:
        num_feat (int): C, width of the full-resolution level. Default: 16.
        num_blocks (list[int]): Residual blocks per level (encoder and decoder each), full to
            quarter resolution. Default: [4, 3, 2].
        illum_feat (int): Width of the illumination estimator. Default: 16.
        sem_channels (list[int]): Channels of the semantic branches fed at scales 1, 1/2, 1/4.
            Default: [48, 96, 192] (HRNet-W48).
        use_semantics (bool): SEM blocks on (False: the baseline without image semantics).
            Default: True.
        num_heads (list[int]): SEM heads per scale. Default: [1, 2, 4].
        ffn_expansion (float): SEM FFN expansion. Default: 2.
        c2f (bool): Coarse-to-fine pass when a prior is given to ``forward``. Default: True.
        illum_floor (float): Lower bound of the illumination map. Default: 0.05.
        text_guidance (bool): NaLSuper-style text guidance (``docs/SEMANTIC_GUIDANCE.md``): a
            :class:`TextConditionedAttention` after the SEM of each decoder level and a
            :class:`MultiLevelFusion` of the three decoder levels; both start as identities.
            ``forward`` then needs ``text_feats``. Off: no extra parameters. Default: False.
        text_dim (int): Width of the CLIP token embeddings (512 for ViT-B/16). Default: 512.
        padding_mode (str): How every padded convolution (SEM and text guidance included) pads
            its feature map: ``'replicate'`` (default) or ``'zeros'``. Zero padding put a faint
            bright line along the image edges of dark images (the estimator and the U-Net see a
            black frame around the features, R = I / L and the reflectance branch over-brighten
            the first 1-2 rows and columns); with ``'replicate'`` a constant image gives an output
            without border effect. ``'zeros'`` reproduces checkpoints trained before this option
            (same state-dict keys; their outputs change by a few grey levels near the edges with
            ``'replicate'``). Default: 'replicate'.
        sem_spatial (bool): The SEM blocks' spatial path (:class:`SemanticEmbeddingModule`;
            False: the published block, channel attention only). Default: True.
        block_type (str): ``'residual'`` (conv3x3 residual blocks) or ``'gated'``
            (:class:`~.gated_block.GatedBlock`, a third of the cost per block; an ablation that did
            not help, docs/DEEPSPG.md). Default: 'residual'.
        dw_kernels (list[int]): Depth-wise kernel of the gated blocks per level. Default: [3, 3, 3].
        illum_guide (bool): Gated blocks guided by the illumination features. Default: False.
        head (str): Reflectance head: ``'filter'`` (:class:`~.filter_head.FilterHead`) or
            ``'residual'`` (R = R0 + conv(features), checkpoints made before the filter head).
            Default: 'filter'.
        head_sigmas (list[float]): Standard deviations of the filter head's Gaussians (the identity
            comes first). Default: [1.0, 2.0].
        illum_scale (int): Estimate the illumination on the input average-pooled by 1, 2 or 4 and
            upsample it (an ablation, docs/DEEPSPG.md). Default: 1.
        illum_global (bool): The illumination estimator's image-wide context
            (:class:`IlluminationEstimator`, ``global_context``; False: checkpoints made before it).
            Default: True.
        exposure_head (bool): A photo-wide exposure and white-balance gain predicted from the pooled
            features of the level ``exposure_source`` names (:class:`~.global_exposure.GlobalExposure`;
            starts as the identity; False: checkpoints made before it). Default: True.
        exposure_source (str): The features the exposure head pools: ``'encoder'`` (the deepest encoder
            level: the photo-wide gain never reads the prior, which steers the reflectance only) or
            ``'decoder'`` (the deepest decoder level, after its SEM block: checkpoints made before the
            encoder source). An encoder-source head carries a marker buffer (``exposure.from_encoder``),
            so a checkpoint of the other source fails to load strictly and the error names this option.
            Default: 'encoder'.
        sem_drop (float): Semantic dropout: in training, each sample of a batch goes through the decoder
            without its SEM blocks (exactly the path of ``use_semantics: false``, at every level and in
            both coarse-to-fine passes) with this probability, so the prior cannot become the network's
            only way to tell its few training photos apart (an ablation that did not help at 0.5,
            docs/DEEPSPG.md). No parameters; evaluation always uses the prior. Default: 0 (off).
        input_level (float | None): Input exposure normalisation: each image is scaled so that its mean
            (over channels and pixels) is this level before the illumination estimate, so the network no
            longer has to learn to undo the darkening's unknown exposure factor (5x in the training
            pairs); the exposure head then also reads the log of the image's mean over the level, the
            one number the scaling removes. A buffer (``input_level_value``) carries the level and is what
            the network uses, so a checkpoint runs at the level it was trained with; one made without the
            option (or a network without it given such a checkpoint) fails to load strictly and the error
            names this option.
            Without the exposure head the removed level is lost; in tiled inference each tile is scaled by
            its own mean. An ablation that lost 1.8 dB at 1,000 iterations (docs/DEEPSPG.md, section 4).
            None: off (the input as given). Default: None.
    """

    down_factor = 4

    def __init__(
        self,
        num_feat=16,
        num_blocks=(4, 3, 2),
        illum_feat=16,
        sem_channels=(48, 96, 192),
        use_semantics=True,
        num_heads=(1, 2, 4),
        ffn_expansion=2.0,
        c2f=True,
        illum_floor=0.05,
        text_guidance=False,
        text_dim=512,
        padding_mode='replicate',
        sem_spatial=True,
        block_type='residual',
        dw_kernels=(3, 3, 3),
        illum_guide=False,
        head='filter',
        head_sigmas=(1.0, 2.0),
        illum_scale=1,
        illum_global=True,
        exposure_head=True,
        sem_drop=0.0,
        exposure_source='encoder',
        input_level=None,
    ):
        super().__init__()
        if input_level is not None and not 0.0 < float(input_level) <= 1.0:
            raise ValueError(f'network_g.input_level must be None or in (0, 1], got {input_level!r}')
        self.input_level = None if input_level is None else float(input_level)
        if self.input_level is not None:
            self.register_buffer('input_level_value', torch.tensor(self.input_level))
        if not 0.0 <= sem_drop < 1.0:
            raise ValueError(f'network_g.sem_drop must be in [0, 1), got {sem_drop!r}')
        self.sem_drop = float(sem_drop)
        if exposure_source not in ('decoder', 'encoder'):
            raise ValueError(f"network_g.exposure_source must be 'decoder' or 'encoder', got {exposure_source!r}")
        self.exposure_source = exposure_source
        if padding_mode not in ('replicate', 'zeros'):
            raise ValueError(f"network_g.padding_mode must be 'replicate' or 'zeros', got {padding_mode!r}")
        if block_type not in ('residual', 'gated'):
            raise ValueError(f"network_g.block_type must be 'residual' or 'gated', got {block_type!r}")
        if illum_scale not in (1, 2, 4):
            raise ValueError(f'network_g.illum_scale must be 1, 2 or 4, got {illum_scale!r}')
        self.illum_scale = illum_scale
        if head not in ('residual', 'filter'):
            raise ValueError(f"network_g.head must be 'residual' or 'filter', got {head!r}")
        if illum_guide and block_type != 'gated':
            raise ValueError("network_g.illum_guide needs network_g.block_type: 'gated'")
        if len(num_blocks) != 3 or len(num_heads) != 3 or len(dw_kernels) != 3:
            raise ValueError('num_blocks, num_heads and dw_kernels need one entry per level (3)')
        if use_semantics and len(sem_channels) != 3:
            raise ValueError(f'sem_channels needs 3 entries (scales 1, 1/2, 1/4), got {list(sem_channels)}')
        widths = [num_feat, num_feat * 2, num_feat * 4]
        self.use_semantics = use_semantics
        self.sem_channels = list(sem_channels)
        self.c2f = c2f
        self.illumination = IlluminationEstimator(illum_feat, illum_floor, illum_global)
        self.embed = nn.Conv2d(3 + illum_feat, widths[0], 3, 1, 1)
        self.illum_guide = illum_guide
        guide = illum_feat if illum_guide else 0
        stages = list(zip(widths, num_blocks, dw_kernels))
        self.encoders = nn.ModuleList([make_stage(block_type, w, n, k, guide) for w, n, k in stages])
        self.downs = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1) for i in range(2)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, 2) for i in range(2)])
        self.fuses = nn.ModuleList([nn.Conv2d(widths[i] * 2, widths[i], 1) for i in range(2)])
        self.decoders = nn.ModuleList([make_stage(block_type, w, n, k, guide) for w, n, k in stages])
        if use_semantics:
            self.sems = nn.ModuleList(
                [
                    SemanticEmbeddingModule(w, cs, heads, ffn_expansion, spatial=sem_spatial)
                    for w, cs, heads in zip(widths, sem_channels, num_heads)
                ]
            )
        self.text_guidance = text_guidance
        self.text_dim = text_dim
        if text_guidance:
            self.tcms = nn.ModuleList(
                [TextConditionedAttention(w, text_dim, heads) for w, heads in zip(widths, num_heads)]
            )
            self.fusion = MultiLevelFusion(widths, widths[0])
        if head == 'filter':
            self.head = FilterHead(widths[0], head_sigmas)
        else:
            self.conv_out = nn.Conv2d(widths[0], 3, 3, 1, 1)
        self.gamma_raw = nn.Parameter(torch.tensor(-4.0))
        extra = 0 if self.input_level is None else 1
        self.exposure = GlobalExposure(widths[2], extra=extra) if exposure_head else None
        if self.exposure is not None and exposure_source == 'encoder':
            # no parameter tells the two sources apart: the marker makes a strict load of the other fail
            self.exposure.register_buffer('from_encoder', torch.ones(()))
        self.padding_mode = padding_mode
        set_padding_mode(self, padding_mode)

    def checkpoint_hint(self, missing, unexpected):
        """Which ``network_g`` option a checkpoint of another layout needs, from its mismatching keys."""
        keys = set(unexpected)
        hints = []
        if 'conv_out.weight' in keys:
            hints.append('network_g.head: residual (the earlier head)')
        if 'head.weights.weight' in keys:
            hints.append('network_g.head: filter')
        if 'illumination.global_context.weight' in missing:
            hints.append('network_g.illum_global: false (made before the global context)')
        if 'illumination.global_context.weight' in keys:
            hints.append('network_g.illum_global: true')
        if 'exposure.fc1.weight' in missing:
            hints.append('network_g.exposure_head: false (made before the exposure head)')
        if 'exposure.fc1.weight' in keys:
            hints.append('network_g.exposure_head: true')
        if 'exposure.from_encoder' in missing and 'exposure.fc1.weight' not in missing:
            hints.append('network_g.exposure_source: decoder (made before the encoder source)')
        if 'exposure.from_encoder' in keys:
            hints.append('network_g.exposure_source: encoder')
        if 'input_level_value' in missing:
            hints.append('network_g.input_level: null (made without input normalisation)')
        if 'input_level_value' in keys:
            hints.append('network_g.input_level: <the level it was trained with>')
        if any(k.endswith('.conv1.weight') and k.startswith(('encoders.', 'decoders.')) for k in keys):
            hints.append('network_g.block_type: residual (the earlier blocks)')
        if any(k.endswith('.expand.weight') and k.startswith(('encoders.', 'decoders.')) for k in keys):
            hints.append('network_g.block_type: gated')
        return f'the file was trained with {" and ".join(hints)}' if hints else None

    def _sem(self, level, feat, sem_feats, sem_keep=None):
        if not self.use_semantics:
            return feat
        if sem_feats is None:
            raise ValueError('DeepSPG with use_semantics=True needs sem_feats (the prior features)')
        out = self.sems[level](feat, sem_feats[level])
        if sem_keep is None:
            return out
        return torch.where(sem_keep, out, feat)

    def draw_sem_keep(self, x):
        """Which samples keep their SEM blocks in this training step (``sem_drop``).

        Args:
            x (Tensor): The batch, (B, 3, H, W).

        Returns:
            Tensor | None: (B, 1, 1, 1) bool, or None (all kept: evaluation, or ``sem_drop`` 0).
        """
        if not (self.training and self.use_semantics and self.sem_drop > 0):
            return None
        return torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.sem_drop

    def _text(self, level, feat, text_feats, text_mask):
        if not self.text_guidance:
            return feat
        if text_feats is None:
            raise ValueError('DeepSPG with text_guidance=True needs text_feats (CLIP token embeddings)')
        return self.tcms[level](feat, text_feats, text_mask)

    def encode(self, x):
        """The part of a pass that does not depend on the semantic features.

        Illumination estimation, Retinex decomposition and the reflectance encoder; the
        coarse-to-fine pass reuses it, since only the decoder sees the prior.

        Args:
            x (Tensor): Low-light RGB in [0, 1], (B, 3, H, W), any H and W.

        Returns:
            dict: ``size`` (H, W), ``illum`` and ``refl0`` (padded to a multiple of 4), encoder
            features ``e0``, ``e1``, ``e2`` at scales 1, 1/2, 1/4, and ``in_stats``: (B, 1) log of each
            image's mean over ``input_level`` (None without ``input_level``).
        """
        in_stats = None
        if self.input_level is not None:  # the buffer's level: a loaded checkpoint's, not only the option's
            level = self.input_level_value
            mean = x.mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-4)
            in_stats = torch.log(mean / level).flatten(1)
            x = x * (level / mean)
        xp = pad_to_multiple(x, self.down_factor)
        if self.illum_scale == 1:
            illum, illum_feat = self.illumination(xp)
        else:  # estimated on the average-pooled input: smooth, and blind to pixel-scale noise
            illum, illum_feat = self.illumination(F.avg_pool2d(xp, self.illum_scale))
            size = xp.shape[-2:]
            illum = F.interpolate(illum, size=size, mode='bilinear', align_corners=False)
            illum_feat = F.interpolate(illum_feat, size=size, mode='bilinear', align_corners=False)
        refl0 = xp / illum
        g = self._guides(illum_feat)
        e0 = self.encoders[0](self.embed(torch.cat([refl0, illum_feat], dim=1)), g[0])
        e1 = self.encoders[1](self.downs[0](e0), g[1])
        e2 = self.encoders[2](self.downs[1](e1), g[2])
        return {
            'size': x.shape[-2:],
            'illum': illum,
            'refl0': refl0,
            'e0': e0,
            'e1': e1,
            'e2': e2,
            'guides': g,
            'in_stats': in_stats,
        }

    def _guides(self, illum_feat):
        """The illumination features at scales 1, 1/2, 1/4 (average-pooled), or Nones without ``illum_guide``."""
        if not self.illum_guide:
            return [None, None, None]
        return [illum_feat, F.avg_pool2d(illum_feat, 2), F.avg_pool2d(illum_feat, 4)]

    def decode(self, enc, sem_feats=None, text_feats=None, text_mask=None, sem_keep=None):
        """The semantic decoder and recomposition on the output of :meth:`encode`.

        Args:
            enc (dict): Output of :meth:`encode`.
            sem_feats, text_feats, text_mask: See :meth:`enhance`.
            sem_keep (Tensor | None): (B, 1, 1, 1) bool, the samples whose SEM blocks run
                (:meth:`draw_sem_keep`); None: all.

        Returns:
            dict: See :meth:`enhance`.
        """
        h, w = enc['size']
        t = (text_feats, text_mask)
        g = enc['guides']
        d2 = self.decoders[2](self._text(2, self._sem(2, enc['e2'], sem_feats, sem_keep), *t), g[2])
        d1 = self.fuses[1](torch.cat([self.ups[1](d2), enc['e1']], dim=1))
        d1 = self.decoders[1](self._text(1, self._sem(1, d1, sem_feats, sem_keep), *t), g[1])
        d0 = self.fuses[0](torch.cat([self.ups[0](d1), enc['e0']], dim=1))
        d0 = self.decoders[0](self._text(0, self._sem(0, d0, sem_feats, sem_keep), *t), g[0])
        if self.text_guidance:
            d0 = self.fusion([d0, d1, d2])
        illum = enc['illum']
        if hasattr(self, 'head'):
            refl = self.head(d0, enc['refl0'])
        else:
            refl = enc['refl0'] + self.conv_out(d0)
        out = refl * illum.pow(F.softplus(self.gamma_raw))
        if self.exposure is not None:
            feat = enc['e2'] if self.exposure_source == 'encoder' else d2
            out = self.exposure(feat, out[..., :h, :w], enc['in_stats'])
        return {'out': out[..., :h, :w], 'illumination': illum[..., :h, :w], 'reflectance': refl[..., :h, :w]}

    def enhance(self, x, sem_feats=None, text_feats=None, text_mask=None):
        """One enhancement pass (:meth:`encode` then :meth:`decode`).

        Args:
            x (Tensor): Low-light RGB in [0, 1], (B, 3, H, W), any H and W.
            sem_feats (list[Tensor] | None): Semantic branches for scales 1, 1/2, 1/4, each
                (B, sem_channels[i], h_i, w_i) of any size (resized inside SEM).
            text_feats (Tensor | None): CLIP token embeddings (B or 1, L, text_dim), for
                ``text_guidance``.
            text_mask (Tensor | None): (B or 1, L) bool, True for real tokens.

        Returns:
            dict: ``out`` (B, 3, H, W) enhanced image (not clamped), ``illumination`` L and
            ``reflectance`` R, both (B, 3, H, W).
        """
        return self.decode(self.encode(x), sem_feats, text_feats, text_mask, self.draw_sem_keep(x))

    def forward(
        self, x, sem_feats=None, prior=None, return_aux=False, text_feats=None, text_mask=None, coarse_grad=False
    ):
        """Enhance, with the coarse-to-fine pass when ``c2f`` is on and ``prior`` is given.

        The coarse-to-fine pass reuses the first pass's :meth:`encode` (only the decoder sees the
        prior), so it costs one decoder, not a whole pass; the result is the same as two full
        passes. The coarse decoder runs without an autograd graph unless ``coarse_grad``: its
        output reaches the final result only through ``prior``, which in :class:`DeepSPGModel`
        runs under ``no_grad``, so no gradient could flow back through it anyway.

        Args:
            x (Tensor): Low-light RGB in [0, 1], (B, 3, H, W).
            sem_feats (list[Tensor] | None): Prior features of ``x`` (see :meth:`enhance`).
            prior (callable | None): Maps an image (B, 3, H, W) to its semantic features (list);
                used for the coarse-to-fine pass.
            return_aux (bool): Return a dict with ``coarse`` (or None), ``illumination``,
                ``reflectance`` and ``sem_feats`` as well. Default: False.
            text_feats, text_mask: CLIP token embeddings and mask, for ``text_guidance`` (see
                :meth:`enhance`); both passes use them.
            coarse_grad (bool): Keep the coarse pass's autograd graph (for a loss on
                ``coarse``, or a differentiable ``prior``). Default: False.

        Returns:
            Tensor | dict: The enhanced image (B, 3, H, W), or the dict.
        """
        enc = self.encode(x)
        keep = self.draw_sem_keep(x)
        coarse = None
        if self.c2f and self.use_semantics and prior is not None:
            with torch.set_grad_enabled(coarse_grad and torch.is_grad_enabled()):
                coarse = self.decode(enc, sem_feats, text_feats, text_mask, keep)['out']
            sem_feats = prior(coarse.clamp(0, 1))
        res = self.decode(enc, sem_feats, text_feats, text_mask, keep)
        if not return_aux:
            return res['out']
        return dict(res, coarse=coarse, sem_feats=sem_feats)
