"""Shared by the train / test entry points: registration, argv normalisation, option checks."""

import argparse
import os
import sys


def normalize_argv(argv):
    """Accept ``--local-rank`` (torch.distributed.launch >= 2.0 spelling) for BasicSR's
    ``--local_rank``, and ``--opt`` for ``-opt`` (Retinexformer's READMEs use both)."""
    out = []
    for arg in argv:
        if arg.startswith('--local-rank'):
            arg = '--local_rank' + arg[len('--local-rank') :]
        elif arg == '--opt' or arg.startswith('--opt='):
            arg = '-opt' + arg[len('--opt') :]
        out.append(arg)
    return out


def _apply_force_yml(opt, entries):
    """BasicSR's ``--force_yml a:b=value`` overrides, applied to ``opt`` (existing keys only)."""
    from basicsr.utils.options import _postprocess_yml_value

    for entry in entries or ():
        keys, _, value = entry.partition('=')
        section = opt
        *parents, last = [k.strip() for k in keys.split(':')]
        for key in parents:
            section = section.get(key) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section[last] = _postprocess_yml_value(value.strip())


def read_option_file(argv, is_train=True):
    """Load and validate the option file named by ``-opt`` in ``argv`` (BasicSR's arguments).

    Returns:
        tuple[dict, argparse.Namespace]: The options as BasicSR's ``parse_options`` will read
        them (``--force_yml`` applied), and the launcher arguments.

    Raises:
        OptionError: naming the file and every missing or misspelt key or bad value
        (:mod:`~deepspg_basicsr.utils.options_check`, :mod:`~deepspg_basicsr.utils.option_values`).
    """
    import yaml
    from basicsr.utils.options import ordered_yaml

    from .utils.option_values import find_value_problems
    from .utils.options_check import OptionError, check_options

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str)
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--force_yml', nargs='+', default=None)
    parser.add_argument('--auto_resume', action='store_true')
    args, _ = parser.parse_known_args(argv)
    if args.opt is None:
        return None, args  # BasicSR's parser reports the missing -opt
    if not os.path.isfile(args.opt):
        raise OptionError(['the file does not exist'], args.opt)
    try:
        with open(args.opt) as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
    except yaml.YAMLError as err:
        raise OptionError([f'not valid YAML: {err}'], args.opt) from err
    _apply_force_yml(opt, args.force_yml)
    paths = (opt.get('path') if isinstance(opt, dict) else None) or {}
    resuming = is_train and (args.auto_resume or bool(isinstance(paths, dict) and paths.get('resume_state')))
    value_problems = find_value_problems(opt, is_train, resuming)
    try:
        check_options(opt, args.opt, is_train)
    except OptionError as err:  # keys and values, every problem at once
        raise OptionError(err.problems + [p for p in value_problems if p not in err.problems], args.opt) from None
    if value_problems:
        raise OptionError(value_problems, args.opt)
    return opt, args


def prepare(argv=None, is_train=True):
    """Register the project in BasicSR, normalise ``sys.argv`` and check the option file;
    returns the root folder (the current directory: experiments/ and results/ are written
    there). A bad option file ends the program (status 2) with a message naming the file and
    the keys; ``dist_params.backend`` is handed to the distributed init
    (:func:`deepspg_basicsr.compat.dist_init_without_cuda`)."""
    import deepspg_basicsr  # noqa: F401  (compat shims + registration)

    from . import compat
    from .utils.options_check import OptionError

    sys.argv = [sys.argv[0]] + normalize_argv(sys.argv[1:] if argv is None else list(argv))
    try:
        opt, args = read_option_file(sys.argv[1:], is_train)
    except OptionError as err:
        print(f'error: {err}', file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    if opt is not None and args.launcher != 'none':
        compat.DIST_BACKEND = (opt.get('dist_params') or {}).get('backend')
    return os.getcwd()


#: Errors of bad input found while the pipeline builds its data sets and models (each names the
#: file or key): reported in one line, exit status 2, like a bad option file.
def _input_errors():
    from .data.pair_check import PairCheckError
    from .utils.checkpoint import CheckpointError

    return (PairCheckError, CheckpointError)


def run_guarded(pipeline, root, is_train):
    """Run BasicSR's ``pipeline(root)`` so that a failure leaves no trace of the run in the folders
    and ends with one clear line.

    * A run that fails before producing anything (no checkpoint, report or image) removes the
      ``experiments/<name>`` / ``results/<name>`` folder it made and renames back the folder
      BasicSR archived (:mod:`deepspg_basicsr.utils.run_folders`).
    * Bad data or checkpoints (:class:`PairCheckError`, :class:`CheckpointError`): ``error: ...``
      on stderr, exit status 2.
    * Ctrl-C: ``interrupted`` on stderr (training: resume with ``--auto_resume``), exit status 130.

    Other exceptions propagate (tracebacks for bugs); the folder rollback applies to them too.
    """
    from .utils.run_folders import rollback_new_folders, run_folders

    opt, args = read_option_file(sys.argv[1:], is_train)
    folders = run_folders(opt, is_train, root) if opt is not None and os.environ.get('RANK', '0') == '0' else []
    tb_root = os.path.abspath(os.path.join(root, 'tb_logger'))
    try:
        with rollback_new_folders(folders, is_tb=lambda f: os.path.dirname(f) == tb_root):
            pipeline(root)
    except _input_errors() as err:
        print(f'error: {err}', file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        hint = '; resume from the last saved checkpoint with --auto_resume' if is_train else ''
        print(f'\ninterrupted (Ctrl-C){hint}', file=sys.stderr, flush=True)
        raise SystemExit(130) from None
