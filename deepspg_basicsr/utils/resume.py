"""Exact resumption of BasicSR training: training states on any device, RNG states, data order.

BasicSR 1.4.2 resumes from ``<iter>.state`` with the optimisers and schedulers only: the
interrupted epoch restarts from its first batch (the batches already trained on are seen
twice) and the random generators start from the seed again (other crops and flips). Here:

* :func:`rng_state` / :func:`set_rng_state`: Python, NumPy, torch CPU and CUDA generators as
  plain containers of tensors and ints, so a state file loads with ``weights_only=True``.
  :class:`~deepspg_basicsr.models.llie_base_model.LLIEBaseModel` saves one per rank.
* :class:`ResumableSampler`: BasicSR's ``EnlargedSampler`` that, in the epoch a run resumes in,
  skips the batches the interrupted run had consumed, and restores the saved RNG states at the
  moment the resumed run draws its first batch (after BasicSR has rebuilt the model and the data
  loader, which consume random numbers of their own).
* :func:`load_resume_state`: replaces ``basicsr.train.load_resume_state`` (see
  :mod:`deepspg_basicsr.compat`); it also hands the position to the sampler.

See ``docs/RELIABILITY.md`` for what is exact and when.
"""

import contextlib
import logging
import random
from os import path as osp

import numpy as np
import torch
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import check_resume, scandir
from basicsr.utils.dist_util import get_dist_info

from .checkpoint import CheckpointError, load_checkpoint_file

logger = logging.getLogger('basicsr')

#: Resume position handed from :func:`load_resume_state` to the next :class:`ResumableSampler`.
_pending = None


# ---- random generators ---------------------------------------------------------------------
def rng_state():
    """The state of every global random generator of this process.

    Returns:
        dict: ``python`` (``random.getstate()``), ``numpy`` (MT19937 key as an int64 tensor and
        the position fields), ``torch`` (CPU generator, a uint8 tensor) and ``cuda`` (one uint8
        tensor per device, only when CUDA is initialised). Loadable with ``weights_only=True``.
    """
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': {
            'name': name,
            'key': torch.from_numpy(key.astype(np.int64)),
            'pos': int(pos),
            'has_gauss': int(has_gauss),
            'cached_gaussian': float(cached),
        },
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what :func:`rng_state` returned (tensors may be on any device)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np_state = state['numpy']
    np.random.set_state(
        (
            np_state['name'],
            np_state['key'].cpu().numpy().astype(np.uint32),
            np_state['pos'],
            np_state['has_gauss'],
            np_state['cached_gaussian'],
        )
    )
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            logger.warning(
                'CUDA RNG states of %d devices saved, %d visible: CUDA generators not restored',
                len(cuda),
                torch.cuda.device_count(),
            )


def all_rank_rng_states():
    """:func:`rng_state` of every rank, as a list indexed by rank (a collective call when
    distributed: every rank must call it)."""
    state = rng_state()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [state]
    states = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(states, state)
    return states


@contextlib.contextmanager
def preserved_rng():
    """Run a block without changing any global random generator (e.g. validation, whose data
    loader draws a seed from torch's generator): training draws the same numbers whether or not
    and how often it validates."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


# ---- the sampler -----------------------------------------------------------------------------
class ResumableSampler(EnlargedSampler):
    """``EnlargedSampler`` that continues an interrupted epoch where the saved run stopped.

    Built like ``EnlargedSampler`` (BasicSR's ``train.py`` builds it; the compat shim puts this
    class in its place). When :func:`load_resume_state` has just loaded a state, the sampler
    takes its position: in the epoch BasicSR resumes (``state['epoch']``), the first
    ``iter - epoch * batches_per_epoch`` batches are skipped, which are exactly the batches the
    interrupted run trained on (BasicSR's data loader drops the last incomplete batch, so epoch
    ``e`` holds iterations ``e * n + 1 .. (e + 1) * n``). When the first batch is drawn, the
    saved RNG states of this rank are restored.

    If the batch size or the number of replicas differs from the saved run's, or the iteration
    does not fall in the saved epoch (a state written by plain BasicSR after a resume), nothing
    is skipped and a warning says so: the epoch restarts from its first batch, as in BasicSR.
    """

    def __init__(self, dataset, num_replicas, rank, ratio=1):
        super().__init__(dataset, num_replicas, rank, ratio)
        global _pending
        self.resume, _pending = _pending, None
        self.skip_epoch, self.skip_samples = None, 0
        if self.resume is not None:
            self._plan_skip()

    def _plan_skip(self):
        res = self.resume
        batch = res['batch_size']
        saved = res.get('data') or {}
        changed = {
            key: (saved[key], now)
            for key, now in (('batch_size', batch), ('world_size', self.num_replicas))
            if key in saved and saved[key] != now
        }
        per_epoch = self.num_samples // batch if batch else 0
        done = res['iter'] - res['epoch'] * per_epoch
        if changed:
            why = ', '.join(f'{k} {old} -> {new}' for k, (old, new) in changed.items())
            logger.warning('Resume: %s changed since the state was saved; epoch %d restarts.', why, res['epoch'])
        elif per_epoch == 0 or not 0 <= done <= per_epoch:
            logger.warning(
                'Resume: iter %d is not in epoch %d of %d batches; the epoch restarts from its first batch.',
                res['iter'],
                res['epoch'],
                per_epoch,
            )
        else:
            self.skip_epoch, self.skip_samples = res['epoch'], done * batch
            logger.info(
                'Resume: epoch %d continues after its first %d batches (%d samples per replica skipped).',
                res['epoch'],
                done,
                self.skip_samples,
            )

    def __iter__(self):
        # A generator: nothing below runs before the data loader asks for its first batch.
        indices = list(super().__iter__())
        if self.skip_epoch is not None and self.epoch == self.skip_epoch:
            indices = indices[self.skip_samples :]
            self.skip_epoch = None
        if self.resume is not None:
            states = self.resume.get('rng')
            rank = get_dist_info()[0]
            if states and len(states) == self.num_replicas:
                set_rng_state(states[rank])
            elif states:
                logger.warning(
                    'Resume: RNG states of %d ranks saved, %d now: generators not restored.',
                    len(states),
                    self.num_replicas,
                )
            self.resume = None
        yield from indices


# ---- finding and loading the state -------------------------------------------------------------
def find_latest_state(state_dir):
    """Return the path of the newest ``<iter>.state`` file in ``state_dir``, or None."""
    states = list_states(state_dir)
    return states[0] if states else None


def list_states(state_dir):
    """``<iter>.state`` files of ``state_dir``, newest first (temporary files of an interrupted
    atomic save, ``.<iter>.state.*.tmp``, are not listed)."""
    if not osp.isdir(state_dir):
        return []
    iters = []
    for name in scandir(state_dir, suffix='state', recursive=False, full_path=False):
        stem = name[: -len('.state')]
        if stem.isdigit():
            iters.append(int(stem))
    return [osp.join(state_dir, f'{i}.state') for i in sorted(iters, reverse=True)]


def _train_batch_size(opt):
    """Batch size of one data loader of BasicSR's train pipeline (``build_dataloader``)."""
    train = (opt.get('datasets') or {}).get('train') or {}
    per_gpu = int(train.get('batch_size_per_gpu', 0))
    return per_gpu if opt.get('dist') else per_gpu * max(1, int(opt.get('num_gpu') or 0))


def load_resume_state(opt):
    """Drop-in replacement of ``basicsr.train.load_resume_state``.

    Finds the state to resume from (``--auto_resume``: the newest readable one under
    ``experiments/<name>/training_states``, an older one when the newest is damaged; else
    ``path.resume_state``), loads it with ``weights_only=True``
    (``path.allow_unsafe_checkpoint: true`` opts out) onto the current CUDA device when there is
    one and onto the CPU otherwise, and hands its position and RNG states to the training
    sampler (:class:`ResumableSampler`).

    Args:
        opt (dict): Parsed options. ``opt['path']['resume_state']`` is set when auto-resuming,
            as upstream does (BasicSR's own code relies on it).

    Returns:
        dict | None: The training state.
    """
    global _pending
    _pending = None
    allow_unsafe = bool(opt['path'].get('allow_unsafe_checkpoint', False))
    if torch.cuda.is_available() and opt.get('num_gpu', 0) != 0:
        device_id = torch.cuda.current_device()
        map_location = lambda storage, loc: storage.cuda(device_id)  # noqa: E731
    else:
        map_location = 'cpu'

    state = None
    if opt['auto_resume']:
        state_dir = opt['path'].get('training_states') or osp.join('experiments', opt['name'], 'training_states')
        for path in list_states(state_dir):
            try:
                state = load_checkpoint_file(path, allow_unsafe=allow_unsafe, map_location=map_location)
            except CheckpointError as err:
                if 'refused' in str(err):  # unsafe content: never skip silently
                    raise
                logger.warning('Auto-resume: %s; trying an older state.', err)
                continue
            opt['path']['resume_state'] = path
            break
    elif opt['path'].get('resume_state'):
        state = load_checkpoint_file(opt['path']['resume_state'], allow_unsafe=allow_unsafe, map_location=map_location)
    if state is None:
        return None
    check_resume(opt, state['iter'])
    _pending = {
        'epoch': int(state['epoch']),
        'iter': int(state['iter']),
        'batch_size': _train_batch_size(opt),
        'data': state.get('data'),
        'rng': state.get('rng'),
    }
    return state


load_resume_state._deepspg = True
