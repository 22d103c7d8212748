"""``deepspg-app``: the local web page (``pip install -e ".[app]"``).

Usage::

    deepspg-app                                   # the model that ships (docs/MODEL.md)
    deepspg-app -opt options/test_DeepSPG_demo.yml [--weights net_g.pth] [--port 7860] [--output results/deepspg_app]
    deepspg-app --onnx deepspg.onnx
    python -m deepspg_basicsr.app ...

Serves on 127.0.0.1 (this machine only) unless ``--host`` says otherwise. Everything it writes
(results, previews, Gradio's uploads) goes under ``--output``.
"""

import argparse
import os
import sys

__all__ = ['main', 'parse_args']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='deepspg-app', description='A local web page to enhance low-light photos with DeepSPG.'
    )
    parser.add_argument(
        '-opt', '--opt', dest='opt', help='test option file (network_g, prior, path); none: the shipped model'
    )
    parser.add_argument('--weights', help='enhancer checkpoint; overrides path.pretrain_network_g')
    parser.add_argument('--onnx', help='a model written by deepspg-export (ONNX Runtime backend) instead')
    parser.add_argument('--seg-checkpoint', help='segmentation prior checkpoint; overrides prior.seg_checkpoint')
    parser.add_argument(
        '--output', '-o', default='results/deepspg_app', help='folder for every file written (default: %(default)s)'
    )
    parser.add_argument(
        '--host', default='127.0.0.1', help='address to serve on (default: %(default)s, this machine only)'
    )
    parser.add_argument('--port', type=int, default=7860, help='port (default: %(default)s)')
    parser.add_argument('--tile', type=int, default=0, help='initial tile size on the page; 0: whole images')
    parser.add_argument('--overlap', type=int, default=None, help='minimum overlap of tiles (default 64)')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'], help='default: cuda if available')
    parser.add_argument('--threads', type=int, default=0, help='CPU threads (torch / onnxruntime); 0: default')
    parser.add_argument(
        '--memory-limit',
        type=float,
        default=0,
        help='GB an image may need; larger ones are refused with a tile size to use (default: half the memory)',
    )
    args = parser.parse_args(argv)
    if args.tile < 0 or args.threads < 0 or args.memory_limit < 0 or (args.overlap or 0) < 0:
        parser.error('--tile, --overlap, --threads and --memory-limit must be >= 0')
    if not 0 < args.port < 65536:
        parser.error(f'--port must be in 1..65535, got {args.port}')
    return args


def main(argv=None):
    """Start the server (blocks until Ctrl-C); returns the exit status."""
    args = parse_args(argv)
    output = os.path.abspath(args.output)
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as err:
        print(f'deepspg-app: error: --output {args.output}: cannot create the folder ({err})', file=sys.stderr)
        return 2
    # before Gradio is imported: its uploads go under --output, and it never calls home
    os.environ['GRADIO_TEMP_DIR'] = os.path.join(output, 'uploads')
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio  # noqa: F401
    except ImportError:
        print('deepspg-app: error: the app needs Gradio: pip install -e ".[app]"', file=sys.stderr)
        return 2
    from basicsr.utils import get_root_logger

    from .session import GB, AppError, AppSession
    from .ui import build_demo

    get_root_logger()  # warnings (random prior weights) on stderr
    session = AppSession(
        output,
        opt=args.opt,
        weights=args.weights,
        onnx=args.onnx,
        device=args.device,
        threads=args.threads,
        memory_limit=args.memory_limit * GB,
        seg_checkpoint=args.seg_checkpoint,
        overlap=args.overlap,
    )
    try:  # without -opt / --weights / --onnx: the model that ships (docs/MODEL.md)
        print(f'deepspg-app: {session.load(args.opt or "", args.weights or "", args.onnx or "")}', file=sys.stderr)
    except AppError as err:  # shown on the page too; the files can be changed there
        print(f'deepspg-app: {err}', file=sys.stderr)
    demo = build_demo(session, tile=args.tile)
    demo.queue(default_concurrency_limit=1)
    if args.host not in ('127.0.0.1', 'localhost', '::1'):
        print(f'deepspg-app: serving on {args.host}: other machines can reach this page', file=sys.stderr)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        allowed_paths=[output],
        ssr_mode=False,
        share=False,
        footer_links=[],
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
