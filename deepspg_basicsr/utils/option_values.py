"""Checks of option *values* (the launcher runs them with :mod:`~deepspg_basicsr.utils.options_check`).

:func:`~deepspg_basicsr.utils.options_check.find_option_problems` checks that the keys BasicSR
needs are present and name registered things. This module checks what the values must be
before BasicSR creates any folder, so that a bad value is reported with its key instead of a
traceback after ``experiments/<name>`` was made (or the previous ``results/<name>`` archived):

* counts: ``train.total_iter``, ``datasets.train.batch_size_per_gpu``, ``logger.print_freq``,
  ``logger.save_checkpoint_freq``, ``val.val_freq`` >= 1; ``num_worker_per_gpu`` >= 0;
* data: every ``datasets.<phase>.dataroot_*`` exists; ``datasets.train.gt_size`` >= 1;
* optimisers (``train.optim_*``): a ``torch.optim`` type, a positive number ``lr`` (YAML and
  ``--force_yml`` read ``1e-3`` without a dot as text) and only arguments the optimiser takes ("did you mean");
* weights: a test run needs ``path.pretrain_network_g`` (an untrained network would be
  benchmarked) unless ``path.random_weights_g: true``; a given weights file must exist (a
  training run that resumes takes its weights from the training state instead).
"""

import inspect
import os

import torch

from .options_check import did_you_mean

__all__ = ['find_value_problems', 'optimizer_problems']


def _count(problems, section, key, where, minimum):
    """``section[key]`` must be an integer >= ``minimum`` (absent keys are left to the key check)."""
    if not isinstance(section, dict) or section.get(key) is None:
        return
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return  # wrong kinds are reported by options_check
    if value != int(value):
        problems.append(f'`{where}` must be a whole number, got {value!r}')
    elif value < minimum:
        problems.append(f'`{where}` must be at least {minimum}, got {value!r}')


def _optimizers():
    return {
        name: cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and name != 'Optimizer'
    }


def optimizer_problems(optim, where):
    """Problems of one ``train.optim_*`` section (``type``, ``lr`` and the other arguments).

    Args:
        optim (dict): The section, e.g. ``{'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]}``.
        where (str): Its key, e.g. ``'train.optim_g'``.

    Returns:
        list[str]: Problems naming the keys.
    """
    problems = []
    name = optim.get('type')
    if not isinstance(name, str):
        return problems  # reported by options_check
    known = _optimizers()
    if name not in known:
        problems.append(f'`{where}.type`: {name!r} is not a torch.optim optimiser{did_you_mean(name, sorted(known))}')
        return problems
    accepted = [p for p in inspect.signature(known[name]).parameters if p not in ('self', 'params')]
    for key in optim:
        if key != 'type' and key not in accepted:
            problems.append(f'`{where}.{key}`: {name} takes no argument {key!r}{did_you_mean(key, accepted)}')
    if 'lr' not in optim:
        others = [k for k in optim if k != 'type']
        problems.append(f'missing key `{where}.lr` (the learning rate){did_you_mean("lr", others)}')
        return problems
    lr = optim['lr']
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        hint = (
            ' (YAML and --force_yml read 1e-3 as text: write 1.0e-3, or !!float 1e-3 in YAML)'
            if isinstance(lr, str)
            else ''
        )
        problems.append(f'`{where}.lr` must be a number, got {type(lr).__name__} {lr!r}{hint}')
    elif not lr > 0:
        problems.append(f'`{where}.lr` must be positive, got {lr!r}')
    return problems


def _data_problems(problems, datasets, is_train):
    for phase, dataset in datasets.items():
        if not isinstance(dataset, dict):
            continue
        where = f'datasets.{phase}'
        for key, value in dataset.items():
            if key.startswith('dataroot_') and isinstance(value, str) and not os.path.exists(value):
                problems.append(
                    f'`{where}.{key}`: {value!r} does not exist (relative paths are read from the current '
                    f'folder {os.getcwd()!r})'
                )
        if is_train and phase == 'train':
            for key, minimum in (('batch_size_per_gpu', 1), ('num_worker_per_gpu', 0), ('gt_size', 1)):
                _count(problems, dataset, key, f'{where}.{key}', minimum)
            ratio = dataset.get('dataset_enlarge_ratio', 1)
            if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and ratio < 1:
                problems.append(f'`{where}.dataset_enlarge_ratio` must be at least 1, got {ratio!r}')


def _weights_problems(problems, path, is_train, resuming):
    weights = path.get('pretrain_network_g')
    if weights is None and not is_train and not path.get('random_weights_g', False):
        problems.append(
            'missing key `path.pretrain_network_g`: a test run would benchmark an untrained enhancer '
            '(set it to the trained net_g_*.pth, or path.random_weights_g: true for measurements of an '
            'untrained network)'
        )
    for key in ('pretrain_network_g', 'pretrain_network_d'):
        value = path.get(key)
        if isinstance(value, str) and not resuming and not os.path.isfile(value) and not _known_enhancer(value):
            problems.append(f'`path.{key}`: the file {value!r} does not exist')


def _known_enhancer(name):
    from ..weights import known_weights_entry

    entry = known_weights_entry(name)
    return entry is not None and entry.kind == 'enhancer'


def find_value_problems(opt, is_train=True, resuming=False):
    """Every problem of the option values (see the module docstring), as strings naming the keys.

    Args:
        opt (dict): The option file as loaded (after ``--force_yml``).
        is_train (bool): A training run (else a test run).
        resuming (bool): ``--auto_resume`` or ``path.resume_state`` is given: the networks
            come from the training state, ``path.pretrain_network_*`` is not read.

    Returns:
        list[str]: Problems; empty when the values look sound. Sections of the wrong kind are
        skipped (options_check reports them).
    """
    problems = []
    if not isinstance(opt, dict):
        return problems
    if isinstance(opt.get('datasets'), dict):
        _data_problems(problems, opt['datasets'], is_train)
    if is_train and isinstance(opt.get('train'), dict):
        train = opt['train']
        _count(problems, train, 'total_iter', 'train.total_iter', 1)
        for key, value in train.items():
            if key.startswith('optim_') and isinstance(value, dict):
                problems += optimizer_problems(value, f'train.{key}')
    if is_train:
        for key in ('print_freq', 'save_checkpoint_freq'):
            _count(problems, opt.get('logger'), key, f'logger.{key}', 1)
        _count(problems, opt.get('val'), 'val_freq', 'val.val_freq', 1)
    if isinstance(opt.get('path'), dict):
        _weights_problems(problems, opt['path'], is_train, resuming)
    return problems
