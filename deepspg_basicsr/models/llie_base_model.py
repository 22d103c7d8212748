"""Common ground of this project's models: BasicSR's SRModel with safer plumbing."""

import copy
import math
import os

import torch
from basicsr.models import lr_scheduler
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ..utils.checkpoint import atomic_torch_save, load_checkpoint_file


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf: training stops; the last saved checkpoint is the last good one."""


class LLIEBaseModel(SRModel):
    """SRModel with what this project's models share.

    * Checkpoints and training states are written atomically (temporary file + rename).
    * ``optim_g`` / ``scheduler`` options are copied, never mutated.
    * DistributedDataParallel works on CPU (gloo) as well as CUDA (nccl).
    * Network weights load with ``weights_only=True`` unless ``path.allow_unsafe_checkpoint``.
    * A non-finite loss stops training with a message naming the iteration and the losses.
    * ``train.grad_clip_norm`` (optional) clips the gradient norm; nothing is hard-coded.
    """

    # ---- devices and distribution -------------------------------------------------------
    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused = self.opt.get('find_unused_parameters', False)
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net

    # ---- optimisers and schedulers without mutating the options ------------------------
    def setup_optimizers(self):
        train_opt = self.opt['train']
        optim_opt = copy.deepcopy(train_opt['optim_g'])
        optim_type = optim_opt.pop('type')
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        self.optimizer_g = self.get_optimizer(optim_type, params, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def setup_schedulers(self):
        sched_opt = copy.deepcopy(self.opt['train']['scheduler'])
        sched_type = sched_opt.pop('type')
        classes = {
            'MultiStepLR': lr_scheduler.MultiStepRestartLR,
            'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
            'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR,
            'CosineAnnealingRestartCyclicLR': getattr(lr_scheduler, 'CosineAnnealingRestartCyclicLR', None),
        }
        if classes.get(sched_type) is None:
            raise ValueError(
                f'train.scheduler.type {sched_type!r} unknown; choose from {sorted(k for k, v in classes.items() if v)}'
            )
        for optimizer in self.optimizers:
            self.schedulers.append(classes[sched_type](optimizer, **sched_opt))

    # ---- one optimisation step's common tail ---------------------------------------------
    def backward_and_step(self, l_total, loss_dict, current_iter):
        """Check the losses are finite, back-propagate, clip (optional), step, EMA, log."""
        if not math.isfinite(float(l_total.detach())):
            values = {k: float(v.detach()) for k, v in loss_dict.items()}
            raise NonFiniteLossError(
                f'non-finite loss at iter {current_iter}: {values}. Training stopped; the last saved '
                'checkpoint is intact (resume with --auto_resume after lowering the learning rate or '
                'checking the data).'
            )
        l_total.backward()
        clip = self.opt['train'].get('grad_clip_norm')
        if clip:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), float(clip))
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    # ---- safe, atomic checkpoints ---------------------------------------------------------
    def load_network(self, net, load_path, strict=True, param_key='params'):
        logger = get_root_logger()
        net = self.get_bare_model(net)
        allow_unsafe = bool(self.opt['path'].get('allow_unsafe_checkpoint', False))
        load_net = load_checkpoint_file(load_path, allow_unsafe=allow_unsafe)
        if param_key is not None:
            if param_key not in load_net and 'params' in load_net:
                param_key = 'params'
                logger.info('Loading: params_ema does not exist, use params.')
            if param_key not in load_net:
                raise KeyError(f'{load_path} has no key {param_key!r} (keys: {list(load_net)[:10]})')
            load_net = load_net[param_key]
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        load_net = {(k[7:] if k.startswith('module.') else k): v for k, v in load_net.items()}
        if strict:
            from ..utils.checkpoint import load_state_dict_strict

            load_state_dict_strict(net, load_net, load_path)
        else:
            self._print_different_keys_loading(net, load_net, strict)
            net.load_state_dict(load_net, strict=False)

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        label = 'latest' if current_iter == -1 else current_iter
        save_path = os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth')
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError('save_network: as many param keys as networks are needed')
        save_dict = {}
        for net_, key in zip(nets, keys):
            state = self.get_bare_model(net_).state_dict()
            save_dict[key] = {(k[7:] if k.startswith('module.') else k): v.detach().cpu() for k, v in state.items()}
        atomic_torch_save(save_dict, save_path)

    @master_only
    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))
