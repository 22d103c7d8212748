"""``deepspg-bench <section> [options]`` (also ``python -m deepspg_basicsr.bench``).

Sections (each a module of this package with ``add_arguments(parser)`` and ``run(rep, args)``):

* ``sizes``: parameters and GFLOPs of the enhancer presets and the priors;
* ``inference``: the speed levers at 600x400 (latency table, no-graph, C2F reuse, cached text,
  channels-last / bf16, ``seg_scale``);
* ``train``: a training iteration, step by step and per loss configuration;
* ``deploy``: torch, ONNX Runtime fp32 / int8 and the output-changing levers, with output change;
* ``memory``: peak memory of inference and of tiled enhancement of large images;
* ``zero-ref``: zero-reference against paired training, same budget;
* ``proof``: the semantic-pathway proof (oracle / control training);
* ``peer``: the whole pipeline against Retinexformer's LOL-v1 network (``--retinexformer FILE``).

Common options: ``--quick`` (small sizes and budgets, seconds to a minute), ``--threads``,
``--repeats``, ``--out FILE.md``, ``--json FILE``, ``--write-docs`` (replace this section's blocks in
README.md and docs/*.md, between ``<!-- bench:NAME:begin/end -->`` markers).
"""

import argparse
import glob
import importlib
import logging
import os
import sys

from .core import Report, machine_record, set_threads, update_docs, write_json

#: The sections: each a module of this package (``zero-ref``: ``zero_ref``).
SECTIONS = ('sizes', 'inference', 'train', 'deploy', 'memory', 'zero-ref', 'proof', 'peer')


def section_module(name):
    """The module implementing section ``name``."""
    return importlib.import_module(f'.{name.replace("-", "_")}', __package__)


def doc_paths(root):
    """README.md and docs/*.md under ``root``: where ``--write-docs`` looks for blocks."""
    return [os.path.join(root, 'README.md')] + sorted(glob.glob(os.path.join(root, 'docs', '*.md')))


def build_parser(section):
    mod = section_module(section)
    parser = argparse.ArgumentParser(
        prog=f'deepspg-bench {section}', description=(mod.__doc__ or '').strip().splitlines()[0]
    )
    parser.add_argument('--quick', action='store_true', help='small sizes and budgets (CI)')
    parser.add_argument('--threads', type=int, default=2, help='torch (and ONNX Runtime) threads; 0: torch default')
    parser.add_argument('--repeats', type=int, default=0, help='timed interleaved rounds (0: section default)')
    parser.add_argument('--out', help='write the Markdown here')
    parser.add_argument('--json', help='write the raw numbers here')
    parser.add_argument('--write-docs', action='store_true', help="replace this section's blocks in the docs")
    parser.add_argument('--docs-root', default=None, help='where README.md and docs/ are (default: the repository)')
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
        set_threads(args.threads)
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
        written = update_docs(rep.texts(), doc_paths(args.docs_root or ROOT))
        for name, paths in written.items():
            print(f'block {name}: ' + (', '.join(paths) if paths else 'no document has its markers'))
    return rep


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in SECTIONS:
        print(__doc__.strip())
        if argv and argv[0] not in ('-h', '--help'):
            print(f'\nunknown section {argv[0]!r}; sections: {", ".join(SECTIONS)}', file=sys.stderr)
            return 2
        return 0
    run_section(argv[0], argv[1:])
    return 0


if __name__ == '__main__':
    sys.exit(main())
