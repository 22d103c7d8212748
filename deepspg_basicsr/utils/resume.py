"""Loading of BasicSR training states on any device."""

from os import path as osp

import torch
from basicsr.utils import check_resume, scandir

from .checkpoint import load_checkpoint_file


def find_latest_state(state_dir):
    """Return the path of the newest ``<iter>.state`` file in ``state_dir``, or None."""
    if not osp.isdir(state_dir):
        return None
    iters = []
    for name in scandir(state_dir, suffix='state', recursive=False, full_path=False):
        stem = name[: -len('.state')]
        if stem.isdigit():  # skips temporary files of an interrupted atomic save
            iters.append(int(stem))
    return osp.join(state_dir, f'{max(iters)}.state') if iters else None


def load_resume_state(opt):
    """Drop-in replacement of ``basicsr.train.load_resume_state``.

    Finds the state to resume from (``--auto_resume``: the newest one under
    ``experiments/<name>/training_states``; else ``path.resume_state``), loads it with
    ``weights_only=True`` (``path.allow_unsafe_checkpoint: true`` opts out) onto the current
    CUDA device when there is one and onto the CPU otherwise.

    Args:
        opt (dict): Parsed options. ``opt['path']['resume_state']`` is set when auto-resuming,
            as upstream does (BasicSR's own code relies on it).

    Returns:
        dict | None: The training state.
    """
    resume_state_path = None
    if opt['auto_resume']:
        state_dir = opt['path'].get('training_states') or osp.join('experiments', opt['name'], 'training_states')
        resume_state_path = find_latest_state(state_dir)
        if resume_state_path is not None:
            opt['path']['resume_state'] = resume_state_path
    elif opt['path'].get('resume_state'):
        resume_state_path = opt['path']['resume_state']
    if resume_state_path is None:
        return None
    if torch.cuda.is_available() and opt.get('num_gpu', 0) != 0:
        device_id = torch.cuda.current_device()
        map_location = lambda storage, loc: storage.cuda(device_id)  # noqa: E731
    else:
        map_location = 'cpu'
    state = load_checkpoint_file(
        resume_state_path,
        allow_unsafe=bool(opt['path'].get('allow_unsafe_checkpoint', False)),
        map_location=map_location,
    )
    check_resume(opt, state['iter'])
    return state


load_resume_state._deepspg = True
