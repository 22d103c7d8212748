"""DeepSPG training / testing model: owns the frozen priors, runs the losses of eq. 15."""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from ..priors import build_clip_prior, build_segmentation_prior
from .llie_base_model import LLIEBaseModel

#: Option key under ``train`` of each loss of eq. 15 -> the model attribute holding it.
LOSS_KEYS = {'pixel_opt': 'cri_pix', 'edge_opt': 'cri_edge', 'semantic_opt': 'cri_sem', 'clip_opt': 'cri_clip'}
#: Default ``prior.guidance_prompt`` of text guidance.
DEFAULT_GUIDANCE_PROMPT = 'a well-lit photo with natural colours and clear details'


@MODEL_REGISTRY.register()
class DeepSPGModel(LLIEBaseModel):
    """DeepSPG model.

    The frozen priors live here, outside ``net_g`` (so EMA, saving and parameter counts cover the
    enhancer only, and DDP never wraps them). The segmentation prior runs once per batch on the
    input, without gradients, and its features are reused by every consumer; for the semantic
    KL loss it runs on the output with gradients (through the frozen weights, into the output)
    and on the ground truth without.

    Options (besides BasicSR's):

    * ``prior``: ``seg_config``, ``seg_checkpoint``, ``seg_branches`` (backbone branches fed to
      the network's SEM scales, default [0, 1, 2]), ``seg_scale`` (run the prior on the input
      resized by this factor, default 1.0), ``clip_model``, ``clip_pretrained``,
      ``clip_quick_gelu``, ``allow_unsafe_checkpoint``, ``guidance_prompt`` (the sentence whose
      CLIP token embeddings condition a network with ``text_guidance``; computed once and cached).
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

    # ---- priors -----------------------------------------------------------------------------
    @property
    def bare_net(self):
        return self.get_bare_model(self.net_g)

    def _build_priors(self):
        """Build the priors the options need (idempotent)."""
        net = self.bare_net
        prior_opt = dict(self.opt.get('prior') or {})
        need_seg_loss = any(getattr(self, attr, None) is not None for attr in self.seg_loss_attrs)
        need_seg = getattr(net, 'use_semantics', False) or need_seg_loss
        if need_seg and self.seg_prior is None:
            branches = list(prior_opt.get('seg_branches', (0, 1, 2)))
            self.seg_branches = branches
            prior = build_segmentation_prior(prior_opt).to(self.device)
            want = getattr(net, 'sem_channels', None)
            have = [prior.branch_channels[b] for b in branches]
            if getattr(net, 'use_semantics', False) and want is not None and list(want) != have:
                raise ValueError(
                    f'network_g.sem_channels {list(want)} does not match the prior: {prior_opt.get("seg_config")} '
                    f'branches {branches} have {have} channels (set network_g.sem_channels or prior.seg_branches)'
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

    def sem_features(self, x):
        """Semantic features of ``x`` (B, 3, H, W) for the network's SEM scales, without gradients."""
        scale = float((self.opt.get('prior') or {}).get('seg_scale', 1.0))
        with torch.no_grad():
            if scale != 1.0:
                x = F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False, antialias=scale < 1)
            feats = self.seg_prior(x, return_logits=False)['feats']
        return [feats[b] for b in self.seg_branches]

    def enhance(self, net, x):
        """Run ``net`` on ``x`` with the prior features (and the C2F prior, the text tokens) it needs."""
        bare = self.get_bare_model(net)
        kwargs = {}
        if getattr(bare, 'text_guidance', False):
            kwargs = {'text_feats': self.text_tokens, 'text_mask': self.text_mask}
        if not getattr(bare, 'use_semantics', False):
            return net(x, **kwargs)
        prior = self.sem_features if getattr(bare, 'c2f', False) else None
        return net(x, self.sem_features(x), prior=prior, **kwargs)

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
        self.setup_optimizers()
        self.setup_schedulers()

    def compute_losses(self, output, gt):
        """Weighted losses of eq. 15 as an ordered dict of ``l_*`` tensors, and their sum."""
        losses = OrderedDict()
        if self.cri_pix is not None:
            losses['l_pix'] = self.cri_pix(output, gt)
        if self.cri_edge is not None:
            losses['l_edge'] = self.cri_edge(output, gt)
        if self.cri_sem is not None:
            out_logits = self.seg_prior(output)['logits']
            with torch.no_grad():
                gt_logits = self.seg_prior(gt)['logits']
            losses['l_sem'] = self.cri_sem(out_logits, gt_logits)
        if self.cri_clip is not None:
            losses['l_clip'] = self.cri_clip(self.clip_prior.encode_image(output), self.clip_prior.text_features)
        return sum(losses.values()), losses

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad(set_to_none=True)
        self.output = self.enhance(self.net_g, self.lq)
        l_total, losses = self.compute_losses(self.output, self.gt)
        self.backward_and_step(l_total, losses, current_iter)

    # ---- testing ------------------------------------------------------------------------------
    def test(self):
        net = getattr(self, 'net_g_ema', None) or self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = self.enhance(net, self.lq).clamp(0, 1)
        net.train(was_training)
