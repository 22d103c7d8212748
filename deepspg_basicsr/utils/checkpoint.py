"""Safe checkpoint loading and atomic saving."""

import os
import pickle
import tempfile
from collections import OrderedDict

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, unsafe, or does not match its model."""


def load_checkpoint_file(path, allow_unsafe=False, map_location='cpu'):
    """Load a ``torch.save`` file with ``weights_only=True`` unless told otherwise.

    Args:
        path (str): Checkpoint file.
        allow_unsafe (bool): Unpickle arbitrary objects (``weights_only=False``). Only for files
            you trust: unpickling can run code. Default: False.
        map_location: Passed to ``torch.load``. Default: 'cpu'.

    Returns:
        object: What the file holds.

    Raises:
        CheckpointError: naming the file, when it is missing, unreadable or refused.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=not allow_unsafe)
    except pickle.UnpicklingError as err:
        if allow_unsafe:
            raise CheckpointError(f'cannot read checkpoint {path}: {err}') from err
        raise CheckpointError(
            f'refused to load {path} with weights_only=True: it holds pickled objects beyond '
            f'tensors and plain containers ({str(err).splitlines()[0]}). If you trust this file, '
            'set the option allow_unsafe_checkpoint: true (or pass --allow-unsafe-checkpoint).'
        ) from err
    except Exception as err:  # truncated zip, not a torch file, ...
        raise CheckpointError(f'cannot read checkpoint {path}: {type(err).__name__}: {err}') from err


def extract_state_dict(obj, path='<checkpoint>', keys=('state_dict', 'params_ema', 'params', 'model')):
    """Return the state dict inside a loaded checkpoint, without a DDP ``module.`` prefix.

    Args:
        obj: What :func:`load_checkpoint_file` returned.
        path (str): File name, for error messages.
        keys (tuple[str]): Keys tried in order when ``obj`` wraps the state dict.
    """
    state = obj
    if isinstance(obj, dict):
        for key in keys:
            if key in obj and isinstance(obj[key], dict):
                state = obj[key]
                break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f'{path} holds no state dict (looked for keys {list(keys)})')
    return OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())


def load_state_dict_strict(module, state_dict, path='<checkpoint>', max_keys=5):
    """Load ``state_dict`` into ``module``; on any key or shape mismatch raise a
    :class:`CheckpointError` naming the file and the first mismatching keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f'{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing keys, first: {missing[:max_keys]}')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected keys, first: {unexpected[:max_keys]}')
        if shapes:
            parts.append(f'{len(shapes)} shape mismatches, first: {shapes[:max_keys]}')
        raise CheckpointError(f'checkpoint {path} does not match {type(module).__name__}: ' + '; '.join(parts))
    module.load_state_dict(state_dict, strict=True)


def atomic_torch_save(obj, path):
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``:
    a kill at any moment leaves either the previous complete file or the new one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
