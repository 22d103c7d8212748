"""Shared by the train / test entry points: registration, argv normalisation, root folder."""

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


def prepare(argv=None):
    """Register the project in BasicSR and normalise ``sys.argv``; returns the root folder
    (the current directory: experiments/ and results/ are written there)."""
    import deepspg_basicsr  # noqa: F401  (compat shims + registration)

    sys.argv = [sys.argv[0]] + normalize_argv(sys.argv[1:] if argv is None else list(argv))
    return os.getcwd()
