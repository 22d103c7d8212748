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


def load_network_weights(net, load_path, strict=True, param_key='params', allow_unsafe=False, logger=None):
    """Load a BasicSR network checkpoint (``{'params': ..., 'params_ema': ...}``) into ``net``,
    the way BasicSR's ``BaseModel.load_network`` does, but safely.

    The file is read by :func:`load_checkpoint_file` (``weights_only=True`` unless
    ``allow_unsafe``); a missing ``param_key`` falls back to ``params`` as upstream; a DDP
    ``module.`` prefix is dropped; with ``strict`` any key or shape mismatch raises a
    :class:`CheckpointError` naming the file and the first mismatching keys, otherwise the
    differences are logged and the matching keys are loaded.

    Args:
        net (nn.Module): The bare network (not wrapped in DDP).
        load_path (str): Checkpoint file.
        strict (bool): Keys and shapes must match exactly. Default: True.
        param_key (str | None): Key of the state dict in the file; None: the file is the state
            dict. Default: 'params'.
        allow_unsafe (bool): ``weights_only=False``, for trusted files only. Default: False.
        logger (logging.Logger | None): Where to log. Default: BasicSR's root logger.
    """
    if logger is None:
        from basicsr.utils import get_root_logger

        logger = get_root_logger()
    load_net = load_checkpoint_file(load_path, allow_unsafe=allow_unsafe)
    if param_key is not None:
        if not isinstance(load_net, dict):
            raise CheckpointError(f'{load_path} holds a {type(load_net).__name__}, not a dict of state dicts')
        if param_key not in load_net and 'params' in load_net:
            logger.info(f'Loading: {param_key} does not exist in {load_path}, use params.')
            param_key = 'params'
        if param_key not in load_net:
            raise CheckpointError(f'{load_path} has no key {param_key!r} (keys: {list(load_net)[:10]})')
        load_net = load_net[param_key]
    if not isinstance(load_net, dict) or not all(torch.is_tensor(v) for v in load_net.values()):
        raise CheckpointError(f'{load_path} [{param_key}] is not a state dict of tensors')
    logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    load_net = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in load_net.items())
    if strict:
        load_state_dict_strict(net, load_net, load_path)
        return
    own = net.state_dict()
    missing = [k for k in own if k not in load_net]
    unexpected = [k for k in load_net if k not in own]
    shapes = [k for k in own if k in load_net and own[k].shape != load_net[k].shape]
    if missing or unexpected or shapes:
        logger.warning(
            f'Non-strict load of {load_path}: {len(missing)} missing keys {missing[:5]}, {len(unexpected)} '
            f'unexpected keys {unexpected[:5]}, {len(shapes)} shape mismatches {shapes[:5]} (not loaded).'
        )
    net.load_state_dict({k: v for k, v in load_net.items() if k not in shapes}, strict=False)
