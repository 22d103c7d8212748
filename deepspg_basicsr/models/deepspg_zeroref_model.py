"""DeepSPG trained from low-light images alone (zero-reference), guided by its semantic priors."""

from basicsr.utils.registry import MODEL_REGISTRY

from .deepspg_model import LOSS_KEYS, DeepSPGModel

#: Option key under ``train`` of each zero-reference loss -> the model attribute holding it.
ZERO_REF_LOSS_KEYS = {
    'exposure_opt': 'cri_exp',
    'color_opt': 'cri_col',
    'spatial_opt': 'cri_spa',
    'illum_opt': 'cri_illum',
    'output_smooth_opt': 'cri_out_smooth',
    'semantic_opt': 'cri_sem',
    'clip_opt': 'cri_clip',
}
#: Losses of the paired models that compare with the ground truth (not available here).
PAIRED_ONLY_LOSS_KEYS = ('pixel_opt', 'edge_opt', 'ssim_opt', 'histogram_opt', 'perceptual_opt', 'gan_opt')


def paired_only_loss_problems(train_opt):
    """Loss options of ``train`` that a zero-reference model cannot use, one message per key.

    Every ``*_opt`` entry with a ``type`` and a non-zero ``loss_weight`` that is not a
    zero-reference loss key (:data:`ZERO_REF_LOSS_KEYS`) is reported, naming ``train.<key>``.

    Args:
        train_opt (dict): The ``train`` options.

    Returns:
        list[str]: Problems; empty when there are none.
    """
    problems = []
    for key, value in (train_opt or {}).items():
        if not (key.endswith('_opt') and isinstance(value, dict) and 'type' in value) or key in ZERO_REF_LOSS_KEYS:
            continue
        if float(value.get('loss_weight', 1.0)) == 0:
            continue
        why = 'a paired-only loss (it needs the ground truth)' if key in PAIRED_ONLY_LOSS_KEYS else 'not a loss key'
        problems.append(
            f'`train.{key}` ({value["type"]}) is {why}; DeepSPGZeroRefModel trains without ground truth: '
            f'use {", ".join(ZERO_REF_LOSS_KEYS)} (remove it or set its loss_weight to 0)'
        )
    return problems


@MODEL_REGISTRY.register()
class DeepSPGZeroRefModel(DeepSPGModel):
    """DeepSPG trained on unpaired low-light images with zero-reference losses (docs/ZERO_REFERENCE.md).

    Everything of :class:`DeepSPGModel` (frozen priors outside ``net_g``, C2F, ``perf``, EMA,
    atomic saves, exact ``--auto_resume``, self-ensemble at test time); the training step never
    reads ``gt``: it enhances ``lq`` and scores the output against the input and the priors only.
    Validation is :class:`~deepspg_basicsr.models.LLIEBaseModel`'s: on a set without ground truth
    only no-reference metrics are computed (``calculate_niqe_llie``,
    ``calculate_brightness_llie``), on a paired set also PSNR / SSIM. Fine-tuning a
    paired-trained checkpoint: ``path.pretrain_network_g``.

    Losses, under ``train`` (each absent or ``loss_weight: 0`` is off; logged names in brackets):

    * ``exposure_opt`` (``l_exp``): :class:`~deepspg_basicsr.losses.SPGExposureLoss` on the
      output; with ``target_level: ref`` the level is the mean grey level of the batch's
      normal-light reference images (``UnpairedLLIEDataset``'s ``dataroot_ref``).
    * ``color_opt`` (``l_col``): :class:`~deepspg_basicsr.losses.SPGColorConstancyLoss`.
    * ``spatial_opt`` (``l_spa``): :class:`~deepspg_basicsr.losses.SPGSpatialConsistencyLoss`,
      output vs input.
    * ``illum_opt`` (``l_illum``): :class:`~deepspg_basicsr.losses.SPGIllumSmoothnessLoss` on the
      network's ``illumination`` (a network whose forward takes ``return_aux``, e.g. DeepSPG).
    * ``output_smooth_opt`` (``l_smooth``): :class:`~deepspg_basicsr.losses.SPGIllumSmoothnessLoss`
      on the *output* (``power: 1``: anisotropic total variation), a denoising prior: brightening
      a dark photo amplifies its noise, and nothing else here removes it.
    * ``semantic_opt`` (``l_sem``): :class:`~deepspg_basicsr.losses.SemanticConsistencyLoss`,
      KL(seg(input) || seg(output)) through the frozen segmentation prior.
    * ``clip_opt`` (``l_clip``): :class:`~deepspg_basicsr.losses.CLIPMultimodalLoss`, unchanged.

    A paired-only loss (``pixel_opt``, ``edge_opt``, ...) is an error naming the key.
    """

    loss_keys = ZERO_REF_LOSS_KEYS

    def init_training_settings(self):
        problems = paired_only_loss_problems(self.opt['train'])
        if problems:
            raise ValueError('; '.join(problems))
        # DeepSPGModel.compute_losses runs l_sem and l_clip; its paired losses stay off here.
        for key in LOSS_KEYS:
            if key not in self.loss_keys:
                setattr(self, LOSS_KEYS[key], None)
        super().init_training_settings()

    def feed_data(self, data):
        """``lq`` (and ``ref`` when the dataset has it); ``gt`` only when present (validation)."""
        for attr in ('lq', 'gt', 'ref'):
            self.__dict__.pop(attr, None)
        for attr in ('lq', 'gt', 'ref'):
            if attr in data:
                setattr(self, attr, data[attr].to(self.device))

    def compute_zero_ref_losses(self, output, lq, illumination=None):
        """Weighted zero-reference losses as an ordered dict of ``l_*`` tensors, and their sum.

        Args:
            output (Tensor): Enhanced image (B, 3, H, W), not clamped.
            lq (Tensor): The low-light input (B, 3, H, W).
            illumination (Tensor | None): The network's illumination map (B, 3, H, W), for
                ``illum_opt``.
        """
        # the input takes the ground truth's place: l_sem = KL(seg(lq) || seg(out)), plus l_clip
        _, losses = self.compute_losses(output, lq)
        if self.cri_exp is not None:
            target = None
            if self.cri_exp.needs_reference:
                if getattr(self, 'ref', None) is None:
                    raise ValueError(
                        "train.exposure_opt.target_level 'ref' needs reference images: set dataroot_ref in "
                        'datasets.train (UnpairedLLIEDataset)'
                    )
                target = self.ref.mean()
            losses['l_exp'] = self.cri_exp(output, target)
        if self.cri_col is not None:
            losses['l_col'] = self.cri_col(output, lq)
        if self.cri_spa is not None:
            losses['l_spa'] = self.cri_spa(output, lq)
        if self.cri_illum is not None:
            if illumination is None:
                raise ValueError(
                    f'train.illum_opt needs the illumination map, which network_g ({self.opt["network_g"]["type"]}) '
                    'does not return'
                )
            losses['l_illum'] = self.cri_illum(illumination)
        if self.cri_out_smooth is not None:
            losses['l_smooth'] = self.cri_out_smooth(output)
        return sum(losses.values()), losses

    def optimize_parameters(self, current_iter):
        self.__dict__.pop('gt', None)  # never used in training
        self.optimizer_g.zero_grad(set_to_none=True)
        illumination = None
        if self.cri_illum is not None:
            res = self.enhance(self.net_g, self.lq, return_aux=True)
            self.output, illumination = res['out'], res.get('illumination')
        else:
            self.output = self.enhance(self.net_g, self.lq)
        l_total, losses = self.compute_zero_ref_losses(self.output, self.lq, illumination)
        self.backward_and_step(l_total, losses, current_iter, output=self.output)
