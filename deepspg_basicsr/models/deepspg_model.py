"""DeepSPG training / testing model: owns the frozen priors, runs the losses of eq. 15."""

from collections import OrderedDict
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from ..deploy.batchnorm_fold import fold_batchnorm
from ..priors import build_clip_prior, build_segmentation_prior
from ..utils.perf import autocast, compile_module, grad_scaler, parse_perf_options, to_channels_last
from ..utils.self_ensemble import self_ensemble
from ..weights import complete_prior_options, known_weights_entry
from .llie_base_model import LLIEBaseModel

#: Option key under ``train`` of each loss of eq. 15 -> the model attribute holding it.
LOSS_KEYS = {
    'pixel_opt': 'cri_pix',
    'edge_opt': 'cri_edge',
    'ssim_opt': 'cri_ssim',
    'semantic_opt': 'cri_sem',
    'clip_opt': 'cri_clip',
}
#: Default ``prior.guidance_prompt`` of text guidance.
DEFAULT_GUIDANCE_PROMPT = 'a well-lit photo with natural colours and clear details'
#: Values of ``prior.source``: what the segmentation prior sees for the SEM features in training.
PRIOR_SOURCES = ('input', 'gt', 'shuffled')


@MODEL_REGISTRY.register()
class DeepSPGModel(LLIEBaseModel):
    """DeepSPG model.

    The frozen priors live here, outside ``net_g`` (so EMA, saving and parameter counts cover the
    enhancer only, and DDP never wraps them). The segmentation prior runs once per batch on the
    input, without gradients, and its features are reused by every consumer; for the semantic
    KL loss it runs on the output with gradients (through the frozen weights, into the output)
    and on the ground truth without.

    Options (besides BasicSR's):

    * ``prior``: ``seg_config``, ``seg_checkpoint`` (a file or a known weights name such as
      ``espnetv2-pascal``, which also supplies a missing ``seg_config`` / ``seg_branches``; see
      :mod:`deepspg_basicsr.weights`), ``seg_branches`` (backbone branches fed to
      the network's SEM scales, default [0, 1, 2]), ``seg_scale`` (run the prior on the input
      resized by this factor, default 1.0), ``c2f_seg_scale`` (the same for the coarse-to-fine
      pass only, default ``seg_scale``), ``clip_model``, ``clip_pretrained`` (a file, an open_clip
      tag, or the known name ``clip-vit-b16-openai``),
      ``clip_quick_gelu``, ``allow_unsafe_checkpoint``, ``guidance_prompt`` (the sentence whose
      CLIP token embeddings condition a network with ``text_guidance``; computed once and cached),
      ``source`` (what the prior sees for the SEM features in *training*, an ablation for research:
      ``input``, the default and the deployable setting; ``gt``, the oracle, the ground truth;
      ``shuffled``, the control, the ground truth of another image of the batch, rolled by one.
      With ``gt`` / ``shuffled`` both passes use those features (no C2F prior pass). Validation
      and testing always run the prior on the input; ``deepspg-bench proof`` evaluates
      with the oracle's features explicitly. See ``docs/DEEPSPG.md``).
    * ``perf``: speed options ``amp`` (none | bf16 | fp16), ``channels_last`` (``auto``, a bool or a
      list of ``enhancer`` / ``prior`` / ``inference``), ``compile`` (bool or torch.compile kwargs),
      ``fold_prior_bn``; the rounding-only ones (``channels_last: auto``, ``fold_prior_bn``) on by
      default, the others off, see :mod:`deepspg_basicsr.utils.perf` and ``docs/BENCHMARKS.md``.
    * Ablations: image semantics = ``network_g.use_semantics``; coarse-to-fine =
      ``network_g.c2f``; text semantics = ``train.clip_opt``; each loss = its ``train.*_opt``
      (absent or ``loss_weight: 0`` turns it off).
    """

    #: ``train`` option key -> attribute of each loss built by :meth:`init_training_settings`.
    loss_keys = LOSS_KEYS
    #: Loss attributes that need the segmentation prior.
    seg_loss_attrs = ('cri_sem',)

    def __init__(self, opt):
        self.seg_prior = None
        self.clip_prior = None
        self.text_tokens = None
        super().__init__(opt)
        self._build_priors()
        self._setup_perf()

    # ---- priors -----------------------------------------------------------------------------
    @property
    def bare_net(self):
        return self.get_bare_model(self.net_g)

    def _build_priors(self):
        """Build the priors the options need (idempotent)."""
        net = self.bare_net
        prior_opt = complete_prior_options(self.opt.get('prior'))
        need_seg_loss = any(getattr(self, attr, None) is not None for attr in self.seg_loss_attrs)
        need_seg = getattr(net, 'use_semantics', False) or need_seg_loss
        if need_seg and self.seg_prior is None:
            branches = list(prior_opt.get('seg_branches', (0, 1, 2)))
            self.seg_branches = branches
            prior = build_segmentation_prior(prior_opt).to(self.device)
            want = getattr(net, 'sem_channels', None)
            have = [prior.branch_channels[b] for b in branches]
            if getattr(net, 'use_semantics', False) and want is not None and list(want) != have:
                entry = known_weights_entry(prior_opt.get('seg_checkpoint'))
                hint = f'; {entry.name} needs network_g.sem_channels {entry.sem_channels}' if entry else ''
                raise ValueError(
                    f'network_g.sem_channels {list(want)} does not match the prior: {prior_opt.get("seg_config")} '
                    f'branches {branches} have {have} channels (set network_g.sem_channels or prior.seg_branches'
                    f'{hint})'
                )
            self.seg_prior = prior
        cri_clip = getattr(self, 'cri_clip', None)
        text_guidance = getattr(net, 'text_guidance', False)
        if (cri_clip is not None or text_guidance) and self.clip_prior is None:
            clip_opt = dict(prior_opt, prompts=cri_clip.prompts) if cri_clip is not None else prior_opt
            self.clip_prior = build_clip_prior(clip_opt).to(self.device)
        if text_guidance and self.text_tokens is None:
            prompt = prior_opt.get('guidance_prompt', DEFAULT_GUIDANCE_PROMPT)
            tokens, mask = self.clip_prior.token_embeddings([prompt])
            keep = int(mask.sum())  # real tokens come first: drop the padding once
            self.text_tokens, self.text_mask = tokens[:, :keep], mask[:, :keep]
            text_dim = getattr(net, 'text_dim', tokens.shape[-1])
            if text_dim != tokens.shape[-1]:
                raise ValueError(
                    f'network_g.text_dim {text_dim} does not match the CLIP text width {tokens.shape[-1]} '
                    f'of {prior_opt.get("clip_model", "ViT-B-16")}'
                )

    def _setup_perf(self):
        """Apply the ``perf`` options (see :mod:`deepspg_basicsr.utils.perf`) to the networks."""
        self.perf = parse_perf_options(self.opt.get('perf'), self.device.type)
        parts = self.perf['channels_last']
        for net in (self.net_g, getattr(self, 'net_g_ema', None)):
            if net is not None:
                to_channels_last(net, 'enhancer' in parts)
                compile_module(self.get_bare_model(net), self.perf['compile'])
        if self.seg_prior is not None and self.perf['fold_prior_bn']:
            fold_batchnorm(self.seg_prior)
        for prior in (self.seg_prior, self.clip_prior):
            if prior is not None:
                to_channels_last(prior, 'prior' in parts)
        self.grad_scaler = grad_scaler(self.device.type, self.perf['amp'])

    def autocast(self):
        """Mixed-precision context of ``perf.amp`` (a null context when off)."""
        return autocast(self.device.type, self.perf['amp'])

    def sem_features(self, x, scale=None):
        """Semantic features of ``x`` (B, 3, H, W) for the network's SEM scales, without gradients.

        Args:
            x (Tensor): Images in [0, 1].
            scale (float | None): Run the prior on ``x`` resized by this factor; None:
                ``prior.seg_scale`` (default 1.0).
        """
        if scale is None:
            scale = (self.opt.get('prior') or {}).get('seg_scale', 1.0)
        scale = float(scale)
        with torch.no_grad(), self.autocast():
            if scale != 1.0:
                x = F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False, antialias=scale < 1)
            x = to_channels_last(x, 'prior' in self.perf['channels_last'])
            return self.seg_prior(x, return_logits=False, branches=self.seg_branches)['feats']

    def c2f_features(self, x):
        """Semantic features for the coarse-to-fine pass: :meth:`sem_features` at
        ``prior.c2f_seg_scale`` (default: ``prior.seg_scale``)."""
        prior_opt = self.opt.get('prior') or {}
        return self.sem_features(x, prior_opt.get('c2f_seg_scale', prior_opt.get('seg_scale', 1.0)))

    def _run_net(self, net, x, *args, **kwargs):
        """``net(x, ...)`` with the ``perf`` options: autocast, channels-last input; float32 output."""
        parts = self.perf['channels_last']
        # 'inference': NHWC input when no gradient is recorded; outputs back to NCHW (3 channels)
        inference_cl = 'inference' in parts and not torch.is_grad_enabled()
        with self.autocast():
            out = net(to_channels_last(x, 'enhancer' in parts or inference_cl), *args, **kwargs)

        def back(v):
            v = v.float()
            return v.contiguous() if inference_cl and v.dim() == 4 else v

        if torch.is_tensor(out):
            return back(out)
        return {k: back(v) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}

    def enhance(self, net, x, sem_feats=None, c2f=True, return_aux=False):
        """Run ``net`` on ``x`` with the prior features (and the C2F prior, the text tokens) it needs.

        Args:
            net (nn.Module): The enhancer (``net_g``, ``net_g_ema`` or their bare modules).
            x (Tensor): Low-light input (B, 3, H, W) in [0, 1].
            sem_feats (list[Tensor] | None): Prior features to use instead of running the prior
                on ``x`` (e.g. features of the whole image cropped to a tile). Default: None.
            c2f (bool): Allow the coarse-to-fine pass (when the network has it on); False runs
                one pass. Default: True.
            return_aux (bool): Return the network's dict (``out``, ``illumination``,
                ``reflectance``, ...; networks whose forward takes ``return_aux``). Default: False.

        Returns:
            Tensor | dict: The enhanced image (B, 3, H, W), not clamped, or the dict.
        """
        bare = self.get_bare_model(net)
        kwargs = {'return_aux': True} if return_aux else {}
        if getattr(bare, 'text_guidance', False):
            kwargs.update(text_feats=self.text_tokens, text_mask=self.text_mask)
        if not getattr(bare, 'use_semantics', False):
            return self._run_net(net, x, **kwargs)
        prior = self.c2f_features if c2f and getattr(bare, 'c2f', False) else None
        return self._run_net(net, x, self.sem_features(x) if sem_feats is None else sem_feats, prior=prior, **kwargs)

    # ---- training -----------------------------------------------------------------------------
    def init_training_settings(self):
        self.net_g.train()
        train_opt = self.opt['train']
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            from basicsr.archs import build_network

            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
            else:
                self.model_ema(0)
            self.net_g_ema.eval()
        for key, attr in self.loss_keys.items():
            loss_opt = train_opt.get(key)
            enabled = bool(loss_opt) and float(loss_opt.get('loss_weight', 1.0)) != 0
            setattr(self, attr, build_loss(dict(loss_opt)).to(self.device) if enabled else None)
        if all(getattr(self, attr) is None for attr in self.loss_keys.values()):
            raise ValueError(f'no loss configured: set at least one of train.{", ".join(self.loss_keys)}')
        self._build_priors()
        if self.prior_source != 'input':
            get_root_logger().warning(
                f'prior.source {self.prior_source!r}: ABLATION, the SEM features come from the ground truth '
                f'({"of another image of the batch" if self.prior_source == "shuffled" else "the oracle"}) '
                'in training; validation runs the prior on the input'
            )
        self.setup_optimizers()
        self.setup_schedulers()

    def compute_losses(self, output, gt):
        """Weighted losses of eq. 15 as an ordered dict of ``l_*`` tensors, and their sum."""
        losses = OrderedDict()
        if self.cri_pix is not None:
            losses['l_pix'] = self.cri_pix(output, gt)
        if self.cri_edge is not None:
            losses['l_edge'] = self.cri_edge(output, gt)
        if self.cri_ssim is not None:
            losses['l_ssim'] = self.cri_ssim(output, gt)
        if self.cri_sem is not None:
            prior_cl = 'prior' in self.perf['channels_last']
            with self.autocast():
                out_logits = self.seg_prior(to_channels_last(output, prior_cl))['logits']
                with torch.no_grad():
                    gt_logits = self.seg_prior(to_channels_last(gt, prior_cl))['logits']
            losses['l_sem'] = self.cri_sem(out_logits, gt_logits)
        if self.cri_clip is not None:
            # CPU: CLIP stays float32; under bf16 autocast ViT-B-16's backward ran 5-6x slower (torch 2.15,
            # docs/BENCHMARKS.md)
            with self.autocast() if self.device.type == 'cuda' else nullcontext():
                image_features = self.clip_prior.encode_image(output)
            losses['l_clip'] = self.cri_clip(image_features, self.clip_prior.text_features)
        return sum(losses.values()), losses

    @property
    def prior_source(self):
        """``prior.source`` (see the class docstring), checked."""
        source = (self.opt.get('prior') or {}).get('source', 'input')
        if source not in PRIOR_SOURCES:
            raise ValueError(f'prior.source must be one of {list(PRIOR_SOURCES)}, got {source!r}')
        if source != 'input' and not getattr(self.bare_net, 'use_semantics', False):
            raise ValueError(f'prior.source {source!r} needs network_g.use_semantics: true (SEM is what it feeds)')
        return source

    def source_features(self, source=None):
        """SEM features of ``self.gt`` (``gt``) or of ``self.gt`` rolled by one along the batch
        (``shuffled``); None for ``input`` (:meth:`enhance` then runs the prior on the input).

        Args:
            source (str | None): One of :data:`PRIOR_SOURCES`; None: ``prior.source``.
        """
        source = source or self.prior_source
        if source == 'input':
            return None
        if getattr(self, 'gt', None) is None:
            raise ValueError(f'prior.source {source!r} needs the ground truth (a paired data set)')
        if source == 'gt':
            return self.sem_features(self.gt)
        if self.gt.shape[0] < 2:
            raise ValueError("prior.source 'shuffled' needs batches of at least 2 images (batch_size_per_gpu)")
        return self.sem_features(torch.roll(self.gt, 1, dims=0))

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad(set_to_none=True)
        feats = self.source_features()
        self.output = self.enhance(self.net_g, self.lq, sem_feats=feats, c2f=feats is None)
        l_total, losses = self.compute_losses(self.output, self.gt)
        self.backward_and_step(l_total, losses, current_iter, output=self.output)

    # ---- testing ------------------------------------------------------------------------------
    supports_self_ensemble = True

    def test(self):
        """Enhance ``self.lq`` into ``self.output``, clamped to [0, 1].

        Uses ``net_g_ema`` when present, unwrapped from DDP (validation runs on rank 0 alone).
        ``val.self_ensemble: true`` averages the 8 flips / rotations of the input, each enhanced
        with its own prior features (and C2F pass) and transformed back
        (:func:`~deepspg_basicsr.utils.self_ensemble.self_ensemble`); 8x the time.
        """
        net = self.get_bare_model(getattr(self, 'net_g_ema', None) or self.net_g)
        was_training = net.training
        net.eval()
        with torch.inference_mode():  # measured faster than no_grad (docs/BENCHMARKS.md), same output
            if (self.opt.get('val') or {}).get('self_ensemble', False):
                out = self_ensemble(lambda t: self.enhance(net, t), self.lq)
            else:
                out = self.enhance(net, self.lq)
            self.output = out.clamp(0, 1)
        net.train(was_training)
