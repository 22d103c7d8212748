"""Validation of a BasicSR option file before anything is built.

BasicSR reads option keys where it needs them, so a missing or misspelt key surfaces as a bare
``KeyError: 'network_g'`` deep in a traceback, or, for a misspelt ``type``, as "No object named
'DeepSPGG' found in 'arch' registry!" after the data sets have been scanned. The launchers
(:mod:`deepspg_basicsr.launch`) run :func:`check_options` first: every problem is reported at
once, each naming the key (``datasets.train.dataroot_gt``) and the option file, with a "did you
mean" for misspelt keys and registry names.

Only what BasicSR's pipelines (and this project's models and dataset) require is checked;
unknown extra keys are allowed (models read their own, e.g. ``prior``).
"""

import difflib

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

#: Keys each data set type needs beyond ``name`` and ``type`` (all phases / the train phase).
DATASET_KEYS = {
    'PairedLLIEDataset': (('dataroot_gt', 'dataroot_lq'), ('gt_size',)),
    'PairedImageDataset': (('dataroot_gt', 'dataroot_lq'), ('gt_size',)),
    'SingleImageDataset': (('dataroot_lq',), ()),
    'UnpairedLLIEDataset': (('dataroot_lq',), ('crop_size',)),
}
#: Scheduler types BasicSR's models (and :class:`LLIEBaseModel`) build.
SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR', 'CosineAnnealingRestartCyclicLR')
DIST_BACKENDS = ('nccl', 'gloo', 'mpi')


def registered(registry, name):
    """Whether ``registry.get(name)`` finds something (it also tries ``<name>_basicsr``, the name
    under which BasicSR registers some of its own classes)."""
    return name in registry or f'{name}_basicsr' in registry


def _names(registry):
    """Names a user can write for ``registry`` (without BasicSR's ``_basicsr`` suffix)."""
    return sorted({k[: -len('_basicsr')] if k.endswith('_basicsr') else k for k in registry.keys()})


class OptionError(ValueError):
    """An option file lacks a key or names something that does not exist.

    Args:
        problems (list[str]): One line per problem, each naming the key.
        opt_path (str): The option file.
    """

    def __init__(self, problems, opt_path):
        self.problems = list(problems)
        self.opt_path = str(opt_path)
        lines = '\n'.join(f'  - {p}' for p in self.problems)
        super().__init__(f"option file '{self.opt_path}': {len(self.problems)} problem(s):\n{lines}")


def did_you_mean(name, candidates):
    """`` (did you mean 'X'?)`` for the closest candidate(s), or ''."""
    candidates = [str(c) for c in candidates]
    lower = {c.lower(): c for c in candidates}
    close = [lower[str(name).lower()]] if str(name).lower() in lower else []
    close += [c for c in difflib.get_close_matches(str(name), candidates, n=3, cutoff=0.6) if c not in close]
    if not close:
        return ''
    return ' (did you mean ' + ' or '.join(repr(c) for c in close[:3]) + '?)'


class _Checker:
    def __init__(self):
        self.problems = []

    def missing(self, section, key, where):
        near = did_you_mean(key, [k for k in section if k != key]) if isinstance(section, dict) else ''
        self.problems.append(f'missing key `{where}`{near}')

    def need(self, section, key, where, kind=None):
        """``section[key]`` (a problem is recorded and None returned when absent or of the wrong kind)."""
        if not isinstance(section, dict) or section.get(key) is None:
            self.missing(section, key, where)
            return None
        value = section[key]
        if kind is not None and not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else ' or '.join(k.__name__ for k in kind)
            self.problems.append(f'`{where}` must be a {names}, got {type(value).__name__} {value!r}')
            return None
        return value

    def registered(self, section, where, registry, label):
        """``section['type']`` must name an object of ``registry``."""
        name = self.need(section, 'type', f'{where}.type', str)
        if name is not None and not registered(registry, name):
            self.problems.append(
                f'`{where}.type`: no {label} named {name!r} is registered{did_you_mean(name, _names(registry))}'
            )
        return name

    def choice(self, value, choices, where):
        if value is not None and value not in choices:
            self.problems.append(f'`{where}`: {value!r} is not one of {list(choices)}{did_you_mean(value, choices)}')


def _check_dataset(c, phase, dataset, is_train):
    where = f'datasets.{phase}'
    if not isinstance(dataset, dict):
        c.problems.append(f'`{where}` must be a mapping, got {type(dataset).__name__}')
        return
    c.need(dataset, 'name', f'{where}.name')
    dtype = c.registered(dataset, where, DATASET_REGISTRY, 'dataset')
    keys, train_keys = DATASET_KEYS.get(dtype, ((), ()))
    train = is_train and phase == 'train'
    for key in keys + (train_keys if train else ()):
        c.need(dataset, key, f'{where}.{key}')
    if train:
        for key in ('batch_size_per_gpu', 'num_worker_per_gpu'):
            c.need(dataset, key, f'{where}.{key}', int)


def _zero_ref_problems(train):
    """Paired-only losses configured for the zero-reference model (issue 11)."""
    from ..models.deepspg_zeroref_model import paired_only_loss_problems

    return paired_only_loss_problems(train)


def find_option_problems(opt, is_train=True):
    """Every problem of a parsed option file, as a list of strings naming the keys.

    Args:
        opt (dict): The option file as loaded (before BasicSR's ``parse_options`` adds to it).
        is_train (bool): Check what the train pipeline needs (else the test pipeline).

    Returns:
        list[str]: Problems; empty when the file looks sound.
    """
    c = _Checker()
    if not isinstance(opt, dict):
        return [f'the file must hold a mapping of options, got {type(opt).__name__}']
    c.need(opt, 'name', 'name', str)
    model = c.need(opt, 'model_type', 'model_type', str)
    if model is not None and not registered(MODEL_REGISTRY, model):
        c.problems.append(
            f'`model_type`: no model named {model!r} is registered{did_you_mean(model, _names(MODEL_REGISTRY))}'
        )
    num_gpu = c.need(opt, 'num_gpu', 'num_gpu', (int, str))
    if isinstance(num_gpu, str) and num_gpu != 'auto':
        c.problems.append(f"`num_gpu` must be an integer or 'auto', got {num_gpu!r}")
    c.need(opt, 'path', 'path', dict)
    network = c.need(opt, 'network_g', 'network_g', dict)
    if network is not None:
        c.registered(network, 'network_g', ARCH_REGISTRY, 'architecture')
    for key, value in opt.items():
        if key.startswith('network_') and key != 'network_g' and isinstance(value, dict):
            c.registered(value, key, ARCH_REGISTRY, 'architecture')

    datasets = c.need(opt, 'datasets', 'datasets', dict)
    if datasets is not None:
        if is_train and 'train' not in datasets:
            c.missing(datasets, 'train', 'datasets.train')
        for phase, dataset in datasets.items():
            if is_train and phase != 'train' and phase.split('_')[0] != 'val':
                near = did_you_mean(phase, ['train', 'val'])
                c.problems.append(f'`datasets.{phase}`: a training option file has the phases train and val*{near}')
            _check_dataset(c, phase, dataset, is_train)

    if is_train:
        train = c.need(opt, 'train', 'train', dict)
        if train is not None:
            c.need(train, 'total_iter', 'train.total_iter', (int, float))
            optim = c.need(train, 'optim_g', 'train.optim_g', dict)
            if optim is not None:
                c.need(optim, 'type', 'train.optim_g.type', str)
            scheduler = c.need(train, 'scheduler', 'train.scheduler', dict)
            if scheduler is not None:
                c.choice(c.need(scheduler, 'type', 'train.scheduler.type', str), SCHEDULERS, 'train.scheduler.type')
            for key, value in train.items():
                if key.endswith('_opt') and isinstance(value, dict) and 'type' in value:
                    c.registered(value, f'train.{key}', LOSS_REGISTRY, 'loss')
            if model == 'DeepSPGZeroRefModel':
                c.problems += _zero_ref_problems(train)
        logger = c.need(opt, 'logger', 'logger', dict)
        if logger is not None:
            c.need(logger, 'print_freq', 'logger.print_freq', (int, float))
            c.need(logger, 'save_checkpoint_freq', 'logger.save_checkpoint_freq', (int, float))
        if isinstance(opt.get('val'), dict):
            c.need(opt['val'], 'val_freq', 'val.val_freq', (int, float))
    val = opt.get('val')
    if isinstance(val, dict) and isinstance(val.get('metrics'), dict):
        for name, metric in val['metrics'].items():
            c.registered(metric, f'val.metrics.{name}', METRIC_REGISTRY, 'metric')
    prior = opt.get('prior')
    if isinstance(prior, dict) and prior.get('source') is not None:
        from ..models.deepspg_model import PRIOR_SOURCES

        c.choice(prior['source'], PRIOR_SOURCES, 'prior.source')
    dist_params = opt.get('dist_params')
    if isinstance(dist_params, dict) and 'backend' in dist_params:
        c.choice(dist_params['backend'], DIST_BACKENDS, 'dist_params.backend')
    return c.problems


def check_options(opt, opt_path, is_train=True):
    """Raise :class:`OptionError` listing every problem of ``opt`` (read from ``opt_path``)."""
    problems = find_option_problems(opt, is_train)
    if problems:
        raise OptionError(problems, opt_path)
