"""Model for any network guided by the semantic prior (SKF-style), with the SCH loss."""

import torch
import torch.nn.functional as F
from basicsr.utils.registry import MODEL_REGISTRY

from .deepspg_model import LOSS_KEYS, DeepSPGModel

_SEG_SOURCES = ('gt', 'lq')


@MODEL_REGISTRY.register()
class SemanticGuidedModel(DeepSPGModel):
    """Train / test a semantically guided network, e.g. a
    :class:`~deepspg_basicsr.archs.SemanticGuidedWrapper` around a stock BasicSR arch.

    Everything of :class:`DeepSPGModel` (frozen priors outside ``net_g``, the losses of eq. 15,
    the C2F pass when ``network_g.c2f``), plus SKF's semantic-guided colour histogram loss
    ``train.histogram_opt`` (:class:`~deepspg_basicsr.losses.SemanticHistogramLoss`, logged as
    ``l_hist``). The prior's branches ``prior.seg_branches`` (default [0, 1, 2]) are the
    ``sem_feats`` list the network receives, so ``network_g.sem_channels`` must list their
    channels.

    Options (besides :class:`DeepSPGModel`'s), under ``train``:

    * ``histogram_opt``: the SCH loss (absent or ``loss_weight: 0``: off).
    * ``seg_map``: where the training losses' segmentation comes from: ``source`` 'gt'
      (default: the prior on the ground truth, which is well lit) or 'lq' (on the input), and
      ``soft`` (false: one-hot of the arg-max class, default; true: the class probabilities).
    """

    loss_keys = dict(LOSS_KEYS, histogram_opt='cri_hist')
    seg_loss_attrs = ('cri_sem', 'cri_hist')

    def init_training_settings(self):
        seg_opt = dict(self.opt['train'].get('seg_map') or {})
        self.seg_map_source = seg_opt.get('source', 'gt')
        if self.seg_map_source not in _SEG_SOURCES:
            raise ValueError(f'train.seg_map.source must be one of {list(_SEG_SOURCES)}, got {self.seg_map_source!r}')
        self.seg_map_soft = bool(seg_opt.get('soft', False))
        self.seg_map = None
        super().init_training_settings()

    def segmentation_map(self, x):
        """Class weights of ``x`` (B, 3, H, W) from the prior, without gradients.

        Returns:
            Tensor: (B, K, H, W), one-hot of the arg-max class (``seg_map.soft`` false) or the
            class probabilities, at the image's resolution.
        """
        with torch.no_grad():
            logits = self.seg_prior(x)['logits']
            logits = F.interpolate(logits.float(), size=x.shape[-2:], mode='bilinear', align_corners=False)
            if self.seg_map_soft:
                return logits.softmax(dim=1)
            return F.one_hot(logits.argmax(dim=1), logits.shape[1]).permute(0, 3, 1, 2).float()

    def needs_seg_map(self):
        """Whether the training losses need :meth:`segmentation_map` this iteration."""
        return getattr(self, 'cri_hist', None) is not None

    def training_seg_map(self):
        return self.segmentation_map(self.gt if self.seg_map_source == 'gt' else self.lq)

    def compute_losses(self, output, gt):
        l_total, losses = super().compute_losses(output, gt)
        if self.cri_hist is not None:
            losses['l_hist'] = self.cri_hist(output, gt, self.seg_map)
            l_total = l_total + losses['l_hist']
        return l_total, losses

    def optimize_parameters(self, current_iter):
        self.seg_map = self.training_seg_map() if self.needs_seg_map() else None
        super().optimize_parameters(current_iter)
