"""Safe checkpoint loading and atomic saving."""

import os
import pickle
import tempfile
import zipfile
from collections import OrderedDict

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, unsafe, or does not match its model."""


#: First bytes of a zip archive (``torch.save`` since torch 1.6) and of a pickle of protocol 2+
#: (the legacy ``torch.save`` format, and plain pickles).
ZIP_MAGIC = b'PK\x03\x04'
PICKLE_MAGIC = b'\x80'


def checkpoint_format_problem(path):
    """Why ``path`` cannot be a ``torch.save`` file, from its first bytes and structure, or None.

    Told apart without unpickling anything: an empty file; a file that is neither a zip archive
    (``torch.save`` since torch 1.6) nor a pickle (the legacy format), e.g. random bytes, an image,
    a text or HTML page saved under a ``.pth`` name; a zip archive without its central directory
    (a truncated download or copy).

    Args:
        path (str): An existing file.

    Returns:
        str | None: The problem, naming the file, or None when the file looks like a checkpoint.
    """
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(8)
    if size == 0:
        return f'{path} is empty (0 bytes): not a checkpoint, or a copy / download that was cut off'
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            return (
                f'{path} is truncated or corrupt: it starts like a torch.save zip archive but the archive is '
                f'incomplete ({size} bytes; {err}). Copy or download it again.'
            )
        return None
    if head.startswith(PICKLE_MAGIC):
        return None
    return (
        f'{path} is not a PyTorch checkpoint: it is neither a zip archive (torch.save) nor a pickle '
        f'(legacy torch.save); it starts with the bytes {head!r}.'
    )


def load_checkpoint_file(path, allow_unsafe=False, map_location='cpu'):
    """Load a ``torch.save`` file with ``weights_only=True`` unless told otherwise.

    Files that cannot be checkpoints (empty, random bytes, truncated archives) are reported as
    such (:func:`checkpoint_format_problem`) before anything is unpickled; only a well-formed
    file that holds objects beyond tensors and plain containers gets the advice about
    ``allow_unsafe_checkpoint``.

    Args:
        path (str): Checkpoint file.
        allow_unsafe (bool): Unpickle arbitrary objects (``weights_only=False``). Only for files
            you trust: unpickling can run code. Default: False.
        map_location: Passed to ``torch.load``. Default: 'cpu'.

    Returns:
        object: What the file holds.

    Raises:
        CheckpointError: naming the file, when it is missing, unreadable, not a checkpoint,
        truncated or refused.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    problem = checkpoint_format_problem(path)
    if problem is not None:
        raise CheckpointError(problem)
    try:
        return torch.load(path, map_location=map_location, weights_only=not allow_unsafe)
    except pickle.UnpicklingError as err:
        if allow_unsafe:
            raise CheckpointError(f'cannot read checkpoint {path} (corrupt?): {err}') from err
        legacy = '' if _is_zip(path) else ' (or, in the legacy torch.save format, it is truncated or corrupt)'
        raise CheckpointError(
            f'refused to load {path} with weights_only=True: it holds pickled objects beyond '
            f'tensors and plain containers ({str(err).splitlines()[0]}){legacy}. If you trust this file, '
            'set the option allow_unsafe_checkpoint: true (or pass --allow-unsafe-checkpoint).'
        ) from err
    except Exception as err:  # damaged archive member, ...
        raise CheckpointError(
            f'cannot read checkpoint {path}: the file is truncated or corrupt ({type(err).__name__}: {err})'
        ) from err


def _is_zip(path):
    with open(path, 'rb') as f:
        return f.read(4) == ZIP_MAGIC


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
        hint = getattr(module, 'checkpoint_hint', None)
        hint = hint(missing, unexpected) if hint is not None else None
        if hint:
            parts.append(hint)
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


def _is_state_dict(obj):
    return isinstance(obj, dict) and bool(obj) and all(torch.is_tensor(v) for v in obj.values())


def select_param_key(load_net, param_key, load_path='<checkpoint>', logger=None):
    """The key of ``load_net`` (a loaded checkpoint) that holds the weights asked for by ``param_key``.

    * ``param_key`` present: it.
    * ``params_ema`` asked for, only ``params`` present (a run without EMA): ``params``, with a
      warning (BasicSR's fallback, which BasicSR applies to any key, silently).
    * The file is a bare state dict (``torch.save(net.state_dict())``: a dict of tensors):
      None, i.e. the whole file, whatever ``param_key`` says (logged).
    * Anything else: :class:`CheckpointError` naming the file, the key and the keys it has.

    Returns:
        str | None: The key, or None for a bare state dict.
    """
    if not isinstance(load_net, dict):
        raise CheckpointError(f'{load_path} holds a {type(load_net).__name__}, not a dict of state dicts')
    if param_key in load_net and isinstance(load_net[param_key], dict):
        return param_key
    if _is_state_dict(load_net):
        if logger is not None:
            logger.info(f'Loading: {load_path} is a bare state dict; loaded whole (param key {param_key!r} unused).')
        return None
    if param_key == 'params_ema' and isinstance(load_net.get('params'), dict):
        if logger is not None:
            logger.warning(f'Loading: {load_path} has no params_ema (trained without EMA); using params.')
        return 'params'
    keys = [k for k, v in load_net.items() if isinstance(v, dict)]
    raise CheckpointError(
        f'{load_path} has no key {param_key!r} (param key, e.g. path.param_key_g or --param-key); '
        f'its state dicts are under {keys[:10]}'
    )


def load_network_weights(net, load_path, strict=True, param_key='params', allow_unsafe=False, logger=None):
    """Load a BasicSR network checkpoint (``{'params': ..., 'params_ema': ...}``) into ``net``,
    the way BasicSR's ``BaseModel.load_network`` does, but safely.

    The file is read by :func:`load_checkpoint_file` (``weights_only=True`` unless
    ``allow_unsafe``); the state dict is chosen by :func:`select_param_key`; a DDP
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
        param_key = select_param_key(load_net, param_key, load_path, logger)
        if param_key is not None:
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
