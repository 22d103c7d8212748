"""Where an enhancer's options come from: an option file (checked), a weights file, a known name.

* :func:`load_option_file` reads a YAML option file and checks it the way the training launcher
  does (:mod:`deepspg_basicsr.utils.options_check`): every unknown or misspelt key of the sections
  inference reads is named with the nearest known one (``network_gg`` -> ``network_g``,
  ``network_g.num_feats`` -> ``num_feat``), before anything is built.
* A **self-describing weights file** (:func:`save_weights`) holds what is needed to rebuild the
  enhancer without an option file::

      {'params': state_dict, 'params_ema': state_dict (optional),
       'deepspg': {'format': 'deepspg-weights/1', 'model_type': 'DeepSPGModel',
                   'network_g': {...}, 'prior': {...}, 'param_key': 'params',
                   'info': {'name': ..., 'trained_on': ..., ...} (optional)}}

  A plain BasicSR checkpoint (``{'params': ...}``) needs the option file beside it.
* A weights argument that is not an existing file is a **known name**, resolved to a local file
  by :func:`resolve_weights_path` (the one place that asks the known-weights table).
"""

import copy
import inspect
import os

from ..utils.options_check import did_you_mean, registered

__all__ = [
    'EnhanceError',
    'WEIGHTS_FORMAT',
    'find_inference_problems',
    'load_option_file',
    'model_options',
    'read_weights_record',
    'resolve_weights_path',
    'save_weights',
]

#: Version tag of the record in a self-describing weights file.
WEIGHTS_FORMAT = 'deepspg-weights/1'
#: The DeepSPG base preset, used when neither an option file nor a weights record names one.
DEFAULT_NETWORK = {'type': 'DeepSPG'}
#: Top-level keys of a BasicSR option file (its own and this project's); others are reported.
TOP_LEVEL_KEYS = (
    'name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'is_train', 'dist', 'rank', 'world_size',
    'auto_resume', 'datasets', 'network_g', 'network_d', 'path', 'train', 'val', 'logger', 'dist_params',
    'find_unused_parameters', 'use_static_graph', 'prior', 'perf', 'root_path',
)  # fmt: skip
#: Keys of ``prior`` the model and the prior builders read.
PRIOR_KEYS = (
    'seg_config', 'seg_checkpoint', 'seg_branches', 'seg_out_branches', 'seg_scale', 'c2f_seg_scale',
    'clip_model', 'clip_pretrained', 'clip_quick_gelu', 'prompts', 'guidance_prompt', 'source',
    'allow_unsafe_checkpoint', 'random_seed', 'seg_exposure_target',
)  # fmt: skip
#: Keys of ``path`` inference reads (and BasicSR's others, allowed).
PATH_KEYS = (
    'pretrain_network_g', 'param_key_g', 'strict_load_g', 'allow_unsafe_checkpoint', 'random_weights_g',
    'resume_state', 'pretrain_network_d', 'param_key_d', 'strict_load_d', 'experiments_root', 'models',
    'training_states', 'log', 'visualization', 'results_root',
)  # fmt: skip


class EnhanceError(RuntimeError):
    """A problem with the enhancer's options or files (not with one image); the message names the
    option (and its command-line flag where there is one)."""


def _unknown(section, known, where):
    return [f'unknown key `{where}{key}`{did_you_mean(key, known)}' for key in section if str(key) not in known]


def _network_problems(net):
    """``network_g.type`` registered, and its keys arguments of the class's constructor."""
    from basicsr.utils.registry import ARCH_REGISTRY

    name = net.get('type', DEFAULT_NETWORK['type'])
    if not registered(ARCH_REGISTRY, name):
        names = sorted(k[: -len('_basicsr')] if k.endswith('_basicsr') else k for k in ARCH_REGISTRY.keys())
        return [f'`network_g.type`: no architecture named {name!r} is registered{did_you_mean(name, names)}']
    cls = ARCH_REGISTRY.get(name)
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return []
    accepted = [p for p in params if p != 'self']
    return [
        f'unknown key `network_g.{key}`: {name} takes no argument {key!r}{did_you_mean(key, accepted)}'
        for key in net
        if key != 'type' and key not in accepted
    ]


def find_inference_problems(opt):
    """Every problem of the sections an enhancer reads, as strings naming the keys.

    Args:
        opt (dict): An option file's contents (a test or a training file).

    Returns:
        list[str]: Unknown or misspelt keys (top level, ``network_g``, ``prior``, ``path``) with
        the nearest known one, and sections of the wrong kind; empty when sound.
    """
    if not isinstance(opt, dict):
        return [f'the file must hold a mapping of options, got {type(opt).__name__}']
    problems = _unknown(opt, TOP_LEVEL_KEYS, '')
    for key, known in (('network_g', None), ('prior', PRIOR_KEYS), ('path', PATH_KEYS)):
        section = opt.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            problems.append(f'`{key}` must be a mapping, got {type(section).__name__} {section!r}')
        elif known is None:
            problems += _network_problems(section)
        else:
            problems += _unknown(section, known, f'{key}.')
    return problems


def load_option_file(path):
    """Read and check an option file (:func:`find_inference_problems`).

    Raises:
        EnhanceError: the file is missing, not YAML or not a mapping.
        OptionError: naming the file and every unknown or misspelt key.
    """
    import yaml

    from ..utils.options_check import OptionError

    if not os.path.isfile(path):
        raise EnhanceError(f'option file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            opt = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise EnhanceError(f'option file {path} is not valid YAML: {err}') from err
    if not isinstance(opt, dict):
        raise EnhanceError(f'option file {path} does not hold a mapping')
    problems = find_inference_problems(opt)
    if problems:
        raise OptionError(problems, path)
    return opt


def resolve_weights_path(name_or_path):
    """A local weights file for ``name_or_path``: the path itself when the file exists, else the
    known-weights table's file for that name (downloaded and verified there).

    Raises:
        EnhanceError: a path that does not exist, or a name the table does not know.
    """
    if name_or_path is None or os.path.isfile(name_or_path):
        return name_or_path
    name = os.fspath(name_or_path)
    if os.sep in name or '/' in name or name.endswith(('.pth', '.pt', '.onnx', '.ckpt')):
        raise EnhanceError(f'weights file not found: {name}')
    from ..weights import WeightsError, resolve_weights  # the known-weights table (name -> verified local file)

    try:
        return resolve_weights(name, kind='enhancer')
    except WeightsError as err:
        raise EnhanceError(
            f'weights file not found: {name}, and it is no known enhancer weights name ({err})'
        ) from None


def read_weights_record(path, allow_unsafe=False):
    """The ``deepspg`` record of a self-describing weights file, or None for a plain checkpoint.

    Raises:
        EnhanceError: a record of an unknown format.
    """
    from ..utils.checkpoint import load_checkpoint_file

    obj = load_checkpoint_file(path, allow_unsafe=allow_unsafe)
    record = obj.get('deepspg') if isinstance(obj, dict) else None
    if record is None:
        return None
    if not isinstance(record, dict) or record.get('format') != WEIGHTS_FORMAT:
        raise EnhanceError(f'{path}: its deepspg record is not {WEIGHTS_FORMAT!r} (written by a newer version?)')
    return record


def save_weights(path, params, network_g, prior=None, params_ema=None, model_type='DeepSPGModel', info=None):
    """Write a self-describing weights file, atomically (see the module docstring).

    Args:
        path (str): Destination.
        params (dict): The enhancer's state dict.
        network_g (dict): Its ``network_g`` options (``type`` included).
        prior (dict | None): Its ``prior`` options. Default: None (the defaults).
        params_ema (dict | None): The EMA weights; the default ``param_key`` when given.
        model_type (str): BasicSR model type. Default: ``DeepSPGModel``.
        info (dict | None): What the weights are (``name``, ``trained_on``, ``recipe``, ...), shown
            by the tools that load them. Default: None.
    """
    from ..utils.checkpoint import atomic_torch_save

    record = {
        'format': WEIGHTS_FORMAT,
        'model_type': model_type,
        'network_g': copy.deepcopy(dict(network_g)),
        'prior': copy.deepcopy(dict(prior or {})),
        'param_key': 'params' if params_ema is None else 'params_ema',
    }
    if info:
        record['info'] = copy.deepcopy(dict(info))
    obj = {'params': {k: v.detach().cpu() for k, v in params.items()}, 'deepspg': record}
    if params_ema is not None:
        obj['params_ema'] = {k: v.detach().cpu() for k, v in params_ema.items()}
    atomic_torch_save(obj, path)
    return path


def model_options(
    opt,
    weights,
    record=None,
    param_key=None,
    seg_checkpoint=None,
    allow_unsafe_checkpoint=False,
    self_ensemble=False,
    seg_scale=None,
    fold_prior_bn=True,
    num_gpu=0,
):
    """The is_train=False BasicSR options of an enhancer.

    Args:
        opt (dict): The option file's contents ({} without one).
        weights (str | None): The enhancer's weights file (None: random weights).
        record (dict | None): The weights file's ``deepspg`` record; its ``network_g`` / ``prior``
            serve where ``opt`` has none.
        param_key, seg_checkpoint, seg_scale: Override ``path.param_key_g``,
            ``prior.seg_checkpoint``, ``prior.seg_scale`` when not None.
        allow_unsafe_checkpoint (bool): Unpickle trusted checkpoints.
        self_ensemble (bool): ``val.self_ensemble``.
        fold_prior_bn (bool): False turns ``perf.fold_prior_bn`` off (the option file's ``perf`` applies).
        num_gpu (int): 1 on CUDA, 0 on the CPU.
    """
    record = record or {}
    paths = opt.get('path') or {}
    prior = copy.deepcopy(dict(opt.get('prior') or record.get('prior') or {}))
    if seg_checkpoint:
        prior['seg_checkpoint'] = seg_checkpoint
    if seg_scale is not None:
        prior['seg_scale'] = float(seg_scale)
    allow_unsafe = bool(allow_unsafe_checkpoint or paths.get('allow_unsafe_checkpoint', False))
    if allow_unsafe:
        prior['allow_unsafe_checkpoint'] = True
    network = opt.get('network_g') or record.get('network_g') or DEFAULT_NETWORK
    return {
        'name': 'deepspg_enhance',
        'model_type': opt.get('model_type', record.get('model_type', 'DeepSPGModel')),
        'is_train': False,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'num_gpu': num_gpu,
        'network_g': copy.deepcopy(dict(network)),
        'prior': prior,
        'path': {
            'pretrain_network_g': weights,
            'param_key_g': param_key or paths.get('param_key_g') or record.get('param_key', 'params'),
            'strict_load_g': True,
            'allow_unsafe_checkpoint': allow_unsafe,
        },
        'val': {'self_ensemble': bool(self_ensemble)},
        'perf': dict(opt.get('perf') or {}, **({} if fold_prior_bn else {'fold_prior_bn': False})),
    }
