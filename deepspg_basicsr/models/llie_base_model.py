"""Common ground of this project's models: BasicSR's SRModel with safer plumbing."""

import copy
import math
import os

import torch
from basicsr.models import lr_scheduler
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import master_only
from torch.nn.parallel import DataParallel, DistributedDataParallel
from tqdm import tqdm

from ..utils.checkpoint import atomic_torch_save, load_network_weights
from ..utils.metric_report import MetricReport, compute_metrics, metric_protocol, option_file_info, report_path
from ..utils.resume import all_rank_rng_states, preserved_rng


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf: training stops; the last saved checkpoint is the last good one."""


class CollapsedOutputError(NonFiniteLossError):
    """Every output pixel of a training batch is exactly 0: the network's features blew up and a gain underflowed
    (the loss stays finite, so :class:`NonFiniteLossError`'s check alone would not fire); handled alike."""


class LLIEBaseModel(SRModel):
    """SRModel with what this project's models share.

    * Checkpoints and training states are written atomically (temporary file + rename).
    * ``optim_g`` / ``scheduler`` options are copied, never mutated.
    * DistributedDataParallel works on CPU (gloo) as well as CUDA (nccl).
    * Network weights load with ``weights_only=True`` unless ``path.allow_unsafe_checkpoint``.
    * A non-finite loss stops training (every rank) with a message naming the iteration and the losses.
    * Training states carry every rank's RNG states and the train loader's batch layout, and
      validation leaves the RNGs untouched, so ``--auto_resume`` continues exactly
      (:mod:`deepspg_basicsr.utils.resume`).
    * ``train.grad_clip_norm`` (optional) clips the gradient norm; nothing is hard-coded.
    """

    def __init__(self, opt):
        super().__init__(opt)
        if not self.is_train and self.opt['path'].get('pretrain_network_g') is None:
            get_root_logger().warning(
                '!!! THE ENHANCER (network_g) HAS RANDOM WEIGHTS: no path.pretrain_network_g. Its outputs and '
                'metrics are those of an untrained network (measurements only). !!!'
            )

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
    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """Any ``torch.optim`` optimiser by name (basicsr 1.4.2 knows only Adam)."""
        cls = getattr(torch.optim, optim_type, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            known = sorted(
                n
                for n, c in vars(torch.optim).items()
                if isinstance(c, type) and issubclass(c, torch.optim.Optimizer) and n != 'Optimizer'
            )
            raise ValueError(f'train.optim_*.type {optim_type!r} is not a torch.optim optimiser; choose from {known}')
        return cls(params, lr=lr, **kwargs)

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
    def all_ranks_finite(self, value):
        """(finite on every rank, finite here) for a scalar tensor. Distributed, a collective call:
        all ranks then stop together, none waits for the others forever."""
        local = math.isfinite(float(value.detach()))
        return self.all_ranks_true([local], value.device)[0], local

    def all_ranks_true(self, local, device):
        """For each bool of ``local`` (list), whether it holds on every rank: one collective call when distributed."""
        if not self.opt['dist']:
            return list(local)
        flags = torch.tensor([float(v) for v in local], device=device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
        return [bool(v) for v in flags.tolist()]

    def backward_and_step(self, l_total, loss_dict, current_iter, output=None):
        """Check the losses are finite (on every rank) and, given the batch's ``output`` (B, 3, H, W), that it is
        not exactly 0 everywhere; back-propagate, clip (optional), step, EMA, log."""
        local = math.isfinite(float(l_total.detach()))
        alive = output is None or bool(output.detach().abs().amax() > 0)
        finite, alive = self.all_ranks_true([local, alive], l_total.device)  # one collective for both checks
        if not finite:
            values = {k: float(v.detach()) for k, v in loss_dict.items()}
            where = f' on another rank (rank {self.opt["rank"]}: {values})' if local else f': {values}'
            raise NonFiniteLossError(
                f'non-finite loss at iter {current_iter}{where}. Training stopped; the last saved '
                'checkpoint is intact (resume with --auto_resume after setting train.grad_clip_norm, e.g. 1.0, '
                'lowering the learning rate, or checking the data).'
            )
        if not alive:
            raise CollapsedOutputError(
                f'the output of the whole training batch is exactly 0 at iter {current_iter} (on this rank or another):'
                ' the network collapsed (features blown up, a gain underflowed). Training stopped; the last saved '
                'checkpoint may already be collapsed: resume from an earlier one with train.grad_clip_norm set, '
                'e.g. 1.0, or a lower learning rate.'
            )
        # perf.amp: fp16 on CUDA scales the loss (DeepSPGModel sets grad_scaler); else None
        scaler = getattr(self, 'grad_scaler', None)
        (scaler.scale(l_total) if scaler is not None else l_total).backward()
        clip = self.opt['train'].get('grad_clip_norm')
        if clip:
            if scaler is not None:
                scaler.unscale_(self.optimizer_g)
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), float(clip))
        if scaler is not None:
            scaler.step(self.optimizer_g)
            scaler.update()
        else:
            self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        """BasicSR's validation, leaving the global random generators as it found them: training
        draws the same random numbers whatever ``val_freq`` is, and a resumed run the same as
        an uninterrupted one (which validated after saving the state it resumes from).

        The validation after training is reported at ``train.total_iter``: BasicSR passes its loop
        counter, which has run past the last iteration by one for each epoch it started after it
        (202 for a 200-iteration run of 80 iterations per epoch)."""
        total = (self.opt.get('train') or {}).get('total_iter') if self.opt.get('is_train') else None
        if isinstance(current_iter, int) and total is not None and current_iter > int(total):
            current_iter = int(total)
        with preserved_rng():
            super().validation(dataloader, current_iter, tb_logger, save_img)

    #: Whether ``test`` honours ``val.self_ensemble`` (recorded in the benchmark report).
    supports_self_ensemble = False

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """SRModel's validation (metrics on uint8 images, best-metric tracking, the same log lines,
        the same image paths) plus the benchmark report of :mod:`deepspg_basicsr.utils.metric_report`:
        a per-image table in the log and a JSON file (training:
        ``experiments/<name>/metrics/<dataset>_<iter>.json``, test:
        ``results/<name>/metrics_<dataset>.json``). Unless ``val.report_input: false`` the input's
        own metrics (lq vs gt) are reported as a reference row. In a distributed run SRModel's
        ``dist_validation`` calls this on rank 0 only, so validation and saving happen once."""
        dataset_name = dataloader.dataset.opt['name']
        val_opt = self.opt.get('val') or {}
        metric_opts = val_opt.get('metrics') or {}
        report_input = bool(val_opt.get('report_input', True))
        if metric_opts:
            self._initialize_best_metric_results(dataset_name)
        report = MetricReport(dataset_name, list(metric_opts), current_iter)
        input_cache = self.__dict__.setdefault('_input_metric_cache', {})  # inputs do not change
        pbar = tqdm(total=len(dataloader), unit='image') if val_opt.get('pbar', False) else None
        for idx, val_data in enumerate(dataloader):
            img_name = os.path.splitext(os.path.basename(val_data['lq_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            visuals = self.get_current_visuals()
            sr_img = tensor2img([visuals['result']])
            gt_img = tensor2img([visuals['gt']]) if 'gt' in visuals else None
            if metric_opts:
                key = (dataset_name, idx, img_name)
                if report_input and key not in input_cache:
                    input_cache[key] = compute_metrics(metric_opts, tensor2img([visuals['lq']]), gt_img)
                inputs = input_cache[key] if report_input else None
                report.add(img_name, compute_metrics(metric_opts, sr_img, gt_img), inputs, sr_img.shape[:2])
            for attr in ('lq', 'gt', 'output'):
                self.__dict__.pop(attr, None)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if save_img:
                imwrite(sr_img, self._validation_image_path(dataset_name, img_name, current_iter))
            if pbar is not None:
                pbar.update(1)
                pbar.set_description(f'Test {img_name}')
        if pbar is not None:
            pbar.close()
        if not metric_opts:
            return
        self.metric_results = {k: (float('nan') if v is None else v) for k, v in report.mean().items()}
        for metric, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, metric, value, current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        logger = get_root_logger()
        logger.info(report.table())
        path = report_path(self.opt, dataset_name, current_iter)
        if path is not None and self.opt.get('rank', 0) == 0:
            protocol = metric_protocol(
                metric_opts,
                self_ensemble=self.supports_self_ensemble and bool(val_opt.get('self_ensemble', False)),
                report_input=report_input,
                extra={'network': 'net_g_ema' if hasattr(self, 'net_g_ema') else 'net_g'},
            )
            report.write_json(path, protocol=protocol, options=self.opt, option_file=option_file_info())
            logger.info(f'Metric report of {dataset_name} written to {path}')

    def _validation_image_path(self, dataset_name, img_name, current_iter):
        """BasicSR's place for a validation image."""
        folder = self.opt['path']['visualization']
        if self.opt['is_train']:
            return os.path.join(folder, img_name, f'{img_name}_{current_iter}.png')
        suffix = (self.opt.get('val') or {}).get('suffix') or self.opt['name']
        return os.path.join(folder, dataset_name, f'{img_name}_{suffix}.png')

    # ---- safe, atomic checkpoints ---------------------------------------------------------
    def load_network(self, net, load_path, strict=True, param_key='params'):
        from ..inference.options import resolve_weights_path  # a known enhancer name -> its verified file

        allow_unsafe = bool(self.opt['path'].get('allow_unsafe_checkpoint', False))
        load_path = resolve_weights_path(load_path)
        load_network_weights(self.get_bare_model(net), load_path, strict, param_key, allow_unsafe, get_root_logger())

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

    def save_training_state(self, epoch, current_iter):
        """Write ``<iter>.state`` atomically (rank 0), with what an exact resume needs besides
        BasicSR's optimisers and schedulers: ``rng``, the generator states of every rank (a
        collective call: every rank must call it, as BasicSR's ``save`` does), and ``data``,
        the train loader's batch size and world size (see :mod:`deepspg_basicsr.utils.resume`)."""
        if current_iter == -1:
            return
        rng = all_rank_rng_states()
        if self.opt.get('rank', 0) != 0:
            return
        train_data = (self.opt.get('datasets') or {}).get('train') or {}
        batch = int(train_data.get('batch_size_per_gpu', 0))
        if not self.opt['dist']:
            batch *= max(1, int(self.opt.get('num_gpu') or 0))
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'rng': rng,
            'data': {'batch_size': batch, 'world_size': int(self.opt.get('world_size', 1))},
        }
        atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))
