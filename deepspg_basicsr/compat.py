"""Compatibility shims for third-party breakage, all in one place.

Each shim names the upstream problem and the condition under which it does nothing. They are
applied once, by ``import deepspg_basicsr``, before BasicSR or MMSegmentation is imported.
"""

import importlib
import importlib.util
import logging
import os
import socket
import sys
import types

import torch

logger = logging.getLogger('deepspg_basicsr')

_APPLIED = False


def alias_torchvision_functional_tensor():
    """basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor`` (in
    ``basicsr/data/degradations.py``), a module torchvision 0.17 renamed to
    ``_functional_tensor``. Register the old name as an alias.

    No-op when the old module still imports (torchvision < 0.17).
    """
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = importlib.import_module('torchvision.transforms._functional_tensor')


def _point_sample(input, points, align_corners=False, **kwargs):
    """Pure-torch ``mmcv.ops.point_sample``: sample ``input`` (B, C, H, W) at ``points``
    (B, P, 2) or (B, Hp, Wp, 2) given in [0, 1] coordinates, bilinearly."""
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    out = torch.nn.functional.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


class _MissingOp:
    """Placeholder for a compiled MMCV op that mmcv-lite lacks: importable, fails when used."""

    def __init__(self, name):
        self._name = name

    def _fail(self, *args, **kwargs):
        raise RuntimeError(
            f'mmcv.ops.{self._name} needs the full MMCV with compiled ops, but mmcv-lite is '
            'installed. Reinstall with DEEPSPG_MMCV=full (see README, "Full MMCV for CUDA").'
        )

    __call__ = _fail

    def __getattr__(self, item):
        self._fail()


def stub_mmcv_ops():
    """mmcv-lite has no compiled ops, and ``import mmseg.models`` fails on the module-level
    ``from mmcv.ops import point_sample`` in mmseg 1.2.2. Install an ``mmcv.ops`` module with a
    pure-torch ``point_sample``; every other op imports as a placeholder that raises a clear
    error when used.

    No-op when MMCV is absent or when the real ``mmcv.ops`` imports (full MMCV).
    """
    if 'mmcv.ops' in sys.modules or importlib.util.find_spec('mmcv') is None:
        return
    try:
        importlib.import_module('mmcv.ops')
        return
    except Exception:  # ImportError / ModuleNotFoundError for mmcv._ext, OSError for bad builds
        sys.modules.pop('mmcv.ops', None)
    stub = types.ModuleType('mmcv.ops')
    stub.__doc__ = 'deepspg_basicsr stub of mmcv.ops for mmcv-lite (pure-torch point_sample only).'
    stub.point_sample = _point_sample
    stub.__getattr__ = lambda name: _MissingOp(name) if not name.startswith('__') else None
    stub.DEEPSPG_STUB = True
    sys.modules['mmcv.ops'] = stub
    mmcv = importlib.import_module('mmcv')
    mmcv.ops = stub


def _hub_reachable(timeout=2.0):
    try:
        with socket.create_connection(('huggingface.co', 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_offline_if_unreachable():
    """open_clip downloads weights through huggingface_hub, which retries for about a minute
    before failing on a machine without network. When the hub cannot be reached within two
    seconds, set ``HF_HUB_OFFLINE=1`` so that a missing download fails at once.

    No-op when ``HF_HUB_OFFLINE`` is already set by the user, or when the hub answers.
    """
    if 'HF_HUB_OFFLINE' in os.environ:
        return
    if not _hub_reachable():
        os.environ['HF_HUB_OFFLINE'] = '1'
        hub = sys.modules.get('huggingface_hub.constants')
        if hub is not None:  # imported before us: its constant was read already
            hub.HF_HUB_OFFLINE = True


def cpu_safe_resume():
    """basicsr 1.4.2's ``train.load_resume_state`` maps the training state onto
    ``torch.cuda.current_device()``, which fails on a CPU-only machine, and unpickles it with
    torch's default. Replace it by a loader that maps onto the current CUDA device when there
    is one (as upstream) and onto the CPU otherwise, with ``weights_only=True``.

    With CUDA present the behaviour is upstream's, apart from the safe unpickling.
    """
    import basicsr.train as basicsr_train

    if getattr(basicsr_train.load_resume_state, '_deepspg', False):
        return
    from .utils.resume import load_resume_state

    basicsr_train.load_resume_state = load_resume_state


def resume_mid_epoch():
    """basicsr 1.4.2's train loop, resumed, restarts the interrupted epoch from its first batch
    (those batches are trained on twice) with freshly seeded random generators. Build the train
    sampler as :class:`~deepspg_basicsr.utils.resume.ResumableSampler`, which skips the consumed
    batches and restores the saved RNG states (``docs/RELIABILITY.md``).

    Without a resume state the sampler is upstream's ``EnlargedSampler`` unchanged.
    """
    import basicsr.train as basicsr_train

    from .utils.resume import ResumableSampler

    basicsr_train.EnlargedSampler = ResumableSampler


#: ``dist_params.backend`` of the option file, set by the launcher (:mod:`deepspg_basicsr.launch`);
#: None: nccl with CUDA, gloo without.
DIST_BACKEND = None


def _init_dist_pytorch_any_device(backend='nccl', **kwargs):
    import basicsr.utils.dist_util as dist_util

    backend = DIST_BACKEND or backend
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return dist_util._deepspg_upstream_init_dist_pytorch(backend, **kwargs)
    if DIST_BACKEND == 'nccl':
        raise RuntimeError('dist_params.backend is nccl, which needs CUDA, but no CUDA device is visible: use gloo')
    torch.distributed.init_process_group(backend='gloo', **kwargs)


_init_dist_pytorch_any_device._deepspg = True


def dist_init_without_cuda():
    """basicsr 1.4.2's ``_init_dist_pytorch`` (``--launcher pytorch``) always asks for nccl and
    calls ``torch.cuda.set_device(rank % torch.cuda.device_count())``: without CUDA that is a
    ZeroDivisionError, so distributed training cannot run on CPU. It also ignores
    ``dist_params.backend``. Replace it: without CUDA, the gloo backend and no device selection;
    with CUDA, upstream's function (device ``rank % device_count``), with the backend of
    ``dist_params.backend`` when the launcher read one (:data:`DIST_BACKEND`), else nccl.

    With CUDA and no ``dist_params.backend`` the behaviour is upstream's.
    """
    import basicsr.utils.dist_util as dist_util

    if getattr(dist_util._init_dist_pytorch, '_deepspg', False):
        return
    dist_util._deepspg_upstream_init_dist_pytorch = dist_util._init_dist_pytorch
    dist_util._init_dist_pytorch = _init_dist_pytorch_any_device


def safe_basicsr_load_network():
    """basicsr 1.4.2's ``BaseModel.load_network`` (stock models: ``SRModel``, ...) calls
    ``torch.load`` with torch's default unpickling, which runs arbitrary code from the file on
    torch < 2.6 and cannot be opted out of for trusted files on newer torch. Load through
    :func:`~deepspg_basicsr.utils.checkpoint.load_network_weights` instead: ``weights_only=True``
    unless ``path.allow_unsafe_checkpoint: true``, errors naming the file and mismatching keys.

    Loading a sound checkpoint gives the same weights as upstream.
    """
    from basicsr.models.base_model import BaseModel

    if getattr(BaseModel.load_network, '_deepspg', False):
        return
    from .utils.checkpoint import load_network_weights

    def load_network(self, net, load_path, strict=True, param_key='params'):
        allow_unsafe = bool(self.opt['path'].get('allow_unsafe_checkpoint', False))
        load_network_weights(self.get_bare_model(net), load_path, strict, param_key, allow_unsafe)

    load_network._deepspg = True
    BaseModel.load_network = load_network


def _make_exp_dirs_of_folder_keys(opt):
    """BasicSR's ``make_exp_dirs`` on the ``path`` entries that are folder names (strings)."""
    from basicsr.utils import misc

    paths = {k: v for k, v in opt['path'].items() if isinstance(v, str)}
    return misc.make_exp_dirs(dict(opt, path=paths))


_make_exp_dirs_of_folder_keys._deepspg = True


def exp_dirs_skip_flags():
    """basicsr 1.4.2's ``make_exp_dirs`` calls ``os.makedirs`` on every ``path`` entry whose key
    does not contain ``strict_load``, ``pretrain_network``, ``resume`` or ``param_key``, so a
    flag such as ``path.allow_unsafe_checkpoint: true`` or ``path.random_weights_g: true`` fails
    with ``TypeError: expected str ... not bool``. Make folders for string entries only (in the
    train and test pipelines, which import the function by name).

    No-op for option files whose ``path`` entries are all strings or BasicSR's skipped keys.
    """
    import basicsr.test as basicsr_test
    import basicsr.train as basicsr_train

    for module in (basicsr_train, basicsr_test):
        if not getattr(module.make_exp_dirs, '_deepspg', False):
            module.make_exp_dirs = _make_exp_dirs_of_folder_keys


def apply_all():
    """Apply every shim once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    alias_torchvision_functional_tensor()
    stub_mmcv_ops()
    hub_offline_if_unreachable()
    cpu_safe_resume()
    resume_mid_epoch()
    dist_init_without_cuda()
    safe_basicsr_load_network()
    exp_dirs_skip_flags()
    _APPLIED = True
