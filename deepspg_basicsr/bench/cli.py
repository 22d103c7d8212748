"""``deepspg-bench <section> [options]`` (also ``python -m deepspg_basicsr.bench``); what each section
measures: docs/BENCHMARKS.md, and ``deepspg-bench <section> --help`` for its options. Common options:
``--quick`` (small sizes and budgets, seconds to a minute), ``--threads``, ``--repeats``, ``--out FILE.md``,
``--json FILE``, ``--write-docs`` (replace the section's blocks in README.md and docs/*.md, between
``<!-- bench:NAME:begin/end -->`` markers). Sections (each a module of this package with
``add_arguments(parser)`` and ``run(rep, args)``):
"""

import argparse
import ast
import glob
import importlib
import logging
import os
import sys

from .core import Report, machine_record, update_docs, write_json

#: The sections: each a module of this package (``zero-ref``: ``zero_ref``).
SECTIONS = ('sizes', 'inference', 'train', 'deploy', 'memory', 'zero-ref', 'proof', 'peer')


def section_module(name):
    """The module implementing section ``name``."""
    return importlib.import_module(f'.{name.replace("-", "_")}', __package__)


def summary(name):
    """The first sentence of section ``name``'s docstring (read, not imported: ``--help`` needs no torch)."""
    with open(os.path.join(os.path.dirname(__file__), f'{name.replace("-", "_")}.py'), encoding='utf-8') as f:
        doc = ast.get_docstring(ast.parse(f.read()))
    return ' '.join(doc.split('\n\n')[0].split('. ')[0].split()).removeprefix(f'Section ``{name}``: ').rstrip('.')


def build_parser(section):
    mod = section_module(section)
    parser = argparse.ArgumentParser(prog=f'deepspg-bench {section}', description=summary(section))
    parser.add_argument('--quick', action='store_true', help='small sizes and budgets (CI)')
    parser.add_argument('--threads', type=int, default=2, help='torch (and ONNX Runtime) threads; 0: torch default')
    parser.add_argument('--repeats', type=int, default=0, help='timed interleaved rounds (0: section default)')
    parser.add_argument('--out', help='write the Markdown here')
    parser.add_argument('--json', help='write the raw numbers here')
    parser.add_argument('--write-docs', action='store_true', help="replace this section's blocks in the docs")
    mod.add_arguments(parser)
    return parser


def run_section(section, argv=()):
    """Run ``section`` with command-line ``argv``; returns the :class:`~.core.Report`."""
    from .common import ROOT

    args = build_parser(section).parse_args(list(argv))
    import torch

    logger = logging.getLogger('basicsr')
    level, threads = logger.level, torch.get_num_threads()
    logger.setLevel(logging.ERROR)  # the random-weight warnings are expected; restored afterwards
    try:
        if args.threads > 0:  # 0: torch's default
            torch.set_num_threads(args.threads)
        args.repeats = args.repeats or (2 if args.quick else 3)
        rep = Report(section, argv=list(argv), machine=machine_record(args.threads or None))
        section_module(section).run(rep, args)
        rep.finish()
    finally:  # a section run as a library call leaves the process's settings as they were
        logger.setLevel(level)
        torch.set_num_threads(threads)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(rep.markdown())
    if args.json:
        write_json(args.json, dict(rep.data, blocks=rep.texts()))
    if args.write_docs:
        docs = [os.path.join(ROOT, 'README.md')] + sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))
        written = update_docs(rep.texts(), docs)
        for name, paths in written.items():
            print(f'block {name}: ' + (', '.join(paths) if paths else 'no document has its markers'))
    return rep


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in SECTIONS:
        print(__doc__.strip() + ''.join(f'\n* {name}: {summary(name)}' for name in SECTIONS))
        if argv and argv[0] not in ('-h', '--help'):
            print(f'\nunknown section {argv[0]!r}; sections: {", ".join(SECTIONS)}', file=sys.stderr)
            return 2
        return 0
    run_section(argv[0], argv[1:])
    return 0
