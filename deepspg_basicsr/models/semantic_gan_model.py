"""Semantic-guided GAN training (SKF's SA loss) for any semantically guided network."""

import copy
from collections import OrderedDict

import torch
from basicsr.archs import build_network
from basicsr.utils.registry import MODEL_REGISTRY

from .llie_base_model import NonFiniteLossError
from .semantic_guided_model import SemanticGuidedModel


@MODEL_REGISTRY.register()
class SemanticGANModel(SemanticGuidedModel):
    """:class:`SemanticGuidedModel` plus a discriminator trained with the semantic adversarial
    loss, the BasicSR way (as ``SRGANModel``).

    The discriminator ``network_d`` (e.g. :class:`~deepspg_basicsr.archs.SemanticPatchDiscriminator`,
    ``num_classes`` = the prior's classes) sees an image with the training segmentation map
    (``train.seg_map``, see :class:`SemanticGuidedModel`). ``train.gan_opt``
    (:class:`~deepspg_basicsr.losses.SemanticAdversarialLoss`) judges the whole image and the
    hardest class region, chosen per image on the enhanced image's scores and used for both the
    output and the ground truth.

    Each iteration: a generator step (every ``net_d_iters`` iterations after
    ``net_d_init_iters``) with the losses of :class:`SemanticGuidedModel` plus ``l_g_gan``, then a
    discriminator step logging ``l_d_real``, ``l_d_fake``, ``out_d_real``, ``out_d_fake``.

    Options (besides :class:`SemanticGuidedModel`'s): ``network_d``; ``train.optim_d``,
    ``train.gan_opt``, ``train.net_d_iters`` (default 1), ``train.net_d_init_iters`` (default 0),
    ``train.grad_clip_norm_d`` (optional); ``path.pretrain_network_d``, ``path.strict_load_d``,
    ``path.param_key_d``. ``net_d`` is saved beside ``net_g`` (``net_d_<iter>.pth``) and shares the
    scheduler type of ``net_g``.
    """

    loss_keys = dict(SemanticGuidedModel.loss_keys, gan_opt='cri_gan')
    seg_loss_attrs = SemanticGuidedModel.seg_loss_attrs + ('cri_gan',)

    def init_training_settings(self):
        train_opt = self.opt['train']
        if not train_opt.get('gan_opt') or 'network_d' not in self.opt:
            raise ValueError('SemanticGANModel needs network_d and train.gan_opt')
        self.net_d = self.model_to_device(build_network(self.opt['network_d']))
        self.print_network(self.net_d)
        load_path = self.opt['path'].get('pretrain_network_d')
        if load_path is not None:
            param_key = self.opt['path'].get('param_key_d', 'params')
            self.load_network(self.net_d, load_path, self.opt['path'].get('strict_load_d', True), param_key)
        self.net_d.train()
        self.net_d_iters = int(train_opt.get('net_d_iters', 1))
        self.net_d_init_iters = int(train_opt.get('net_d_init_iters', 0))
        super().init_training_settings()
        want = getattr(self.get_bare_model(self.net_d), 'num_classes', None)
        if want is not None and want != self.seg_prior.num_classes:
            raise ValueError(
                f'network_d.num_classes {want} does not match the segmentation prior '
                f'({self.seg_prior.num_classes} classes)'
            )

    def setup_optimizers(self):
        super().setup_optimizers()
        optim_opt = copy.deepcopy(self.opt['train']['optim_d'])
        optim_type = optim_opt.pop('type')
        self.optimizer_d = self.get_optimizer(optim_type, self.net_d.parameters(), **optim_opt)
        self.optimizers.append(self.optimizer_d)

    def needs_seg_map(self):
        return True

    def _disc(self, img, region=None):
        """Discriminator scores of ``img`` with the training segmentation map (masked to ``region``)."""
        if region is None:
            return self.net_d(img, self.seg_map)
        return self.net_d(img * region, self.seg_map * region)

    def optimize_parameters(self, current_iter):
        self.seg_map = self.training_seg_map()
        loss_dict = OrderedDict()
        region = None

        # generator
        for p in self.net_d.parameters():
            p.requires_grad = False
        if current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters:
            self.optimizer_g.zero_grad(set_to_none=True)
            self.output = self.enhance(self.net_g, self.lq)
            l_total, losses = self.compute_losses(self.output, self.gt)
            pred = self._disc(self.output)
            region = self.cri_gan.select_region(pred.detach(), self.seg_map)
            losses['l_g_gan'] = self.cri_gan(pred, True, False, self._disc(self.output, region), region)
            self.backward_and_step(l_total + losses['l_g_gan'], losses, current_iter, output=self.output)
            loss_dict.update(losses)
        else:
            with torch.no_grad():
                self.output = self.enhance(self.net_g, self.lq)

        # discriminator
        for p in self.net_d.parameters():
            p.requires_grad = True
        self.optimizer_d.zero_grad(set_to_none=True)
        fake = self.output.detach()
        if region is None:
            with torch.no_grad():
                region = self.cri_gan.select_region(self._disc(fake), self.seg_map)
        real_pred = self._disc(self.gt)
        l_d_real = self.cri_gan(real_pred, True, True, self._disc(self.gt, region), region)
        fake_pred = self._disc(fake)
        l_d_fake = self.cri_gan(fake_pred, False, True, self._disc(fake, region), region)
        l_d = l_d_real + l_d_fake
        finite, local = self.all_ranks_finite(l_d)
        if not finite:
            where = ' on another rank' if local else ''
            raise NonFiniteLossError(
                f'non-finite discriminator loss at iter {current_iter}{where}: l_d_real {float(l_d_real)}, '
                f'l_d_fake {float(l_d_fake)}. Training stopped; the last saved checkpoint is intact.'
            )
        l_d.backward()
        clip = self.opt['train'].get('grad_clip_norm_d')
        if clip:
            torch.nn.utils.clip_grad_norm_(self.net_d.parameters(), float(clip))
        self.optimizer_d.step()
        loss_dict['l_d_real'] = l_d_real
        loss_dict['l_d_fake'] = l_d_fake
        loss_dict['out_d_real'] = real_pred.detach().mean()
        loss_dict['out_d_fake'] = fake_pred.detach().mean()
        self.log_dict = self.reduce_loss_dict(loss_dict)

    def save(self, epoch, current_iter):
        if hasattr(self, 'net_g_ema'):
            self.save_network([self.net_g, self.net_g_ema], 'net_g', current_iter, param_key=['params', 'params_ema'])
        else:
            self.save_network(self.net_g, 'net_g', current_iter)
        self.save_network(self.net_d, 'net_d', current_iter)
        self.save_training_state(epoch, current_iter)
