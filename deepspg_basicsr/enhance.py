"""``deepspg-enhance``: enhance your own low-light images with a trained DeepSPG (no ground truth).

A thin command line on :class:`deepspg_basicsr.DeepSPGEnhancer` (argument parsing, file walking,
output writing); the enhancement itself is the core's.

Usage::

    deepspg-enhance photo.jpg --output enhanced/      # the model that ships (docs/MODEL.md)
    deepspg-enhance photos/ -opt options/test_DeepSPG_LOLv1.yml --output enhanced/
    deepspg-enhance 'photos/*.jpg' img.png -opt options/test_DeepSPG_LOLv1.yml --weights net_g.pth \\
        --output enhanced/ --tile 512 --overlap 64 --device cuda --half
    deepspg-enhance photos/ --backend onnxruntime --onnx deepspg.onnx --output enhanced/ --threads 2
    python -m deepspg_basicsr.enhance ...

Inputs are files, folders (their image files, not recursive) and glob patterns. Each result is
written into ``--output`` under the input's file name, in the input's format: bit depth (8 / 16
bit, float), grey or colour, and the alpha channel (kept aside, never enhanced) as far as the
extension's codec stores them (:mod:`deepspg_basicsr.utils.image_io`). Optional pictures go into
sub-folders: ``compare/`` (input | output side by side), ``maps/`` (illumination and reflectance,
reflectance clipped to [0, 1] for display) and ``seg/`` (the prior's segmentation of the input as
a colour overlay on the output, fixed 150-colour palette). A file that cannot be read, enhanced or
written is reported by name and the others are still processed; the exit status is then 1 and
the failures are listed at the end.

Pictures are named after the input's stem (``compare/s.png``), or after its whole file name when
two inputs share the stem (``s.png`` and ``s.jpg``: ``compare/s.png.png``, ``compare/s.jpg.png``).
Results already in ``--output`` are never replaced silently: the run is refused (status 2) unless
``--overwrite``. Exit status: 0 all written, 1 some failed, 2 bad command line / model / output
folder, 130 interrupted (Ctrl-C; the images finished so far are kept).

Large images: ``--tile T`` processes overlapping T x T tiles blended without seams
(:func:`deepspg_basicsr.utils.tiling.tiled_forward`, tiles aligned to the network's
down-sampling factor). The segmentation prior then sees one tile at a time: its semantics are
local to the tile (default), or, with ``--prior-global``, the prior runs once on the whole image
downscaled to ``--prior-size`` and each tile gets the matching crop of those features (both C2F
passes; each pass is then a tiled pass over the whole image). See docs/EVALUATION.md for the
memory bound and measured differences.

``--backend onnxruntime --onnx FILE`` runs a model written by ``deepspg-export`` instead
(:class:`deepspg_basicsr.deploy.OrtEnhancer`; docs/DEPLOY.md): same inputs, outputs, tiles,
self-ensemble and maps; ``--half``, ``--save-seg`` and ``--prior-global`` need the torch backend.
"""

import argparse
import glob
import os
import sys

import torch

from .inference.enhancer import OVERLAP_DEFAULT, DeepSPGEnhancer, check_run_options, resolve_device
from .inference.options import EnhanceError
from .utils.image_io import ImageRecord, read_image, write_image

__all__ = ['main', 'build_enhancer', 'load_model', 'collect_inputs', 'parse_args', 'run_options']

#: Extensions of the files taken from an input folder (what OpenCV decodes).
IMAGE_EXTENSIONS = (
    '.png', '.jpg', '.jpeg', '.jpe', '.bmp', '.dib', '.tif', '.tiff', '.webp', '.exr', '.hdr', '.pfm',
    '.ppm', '.pgm', '.pbm', '.pnm', '.sr', '.ras', '.jp2',
)  # fmt: skip


# ---- inputs ------------------------------------------------------------------------------------
def collect_inputs(inputs):
    """Expand files, folders and glob patterns into a list of files.

    Args:
        inputs (list[str]): Paths: a file (taken whatever its extension), a folder (its files
            with an image extension, sorted, hidden files skipped) or a glob pattern (``*``,
            ``?``, ``[``; sorted matches).

    Returns:
        tuple[list[str], list[tuple[str, str]]]: The files in order (duplicates removed), and
        (input, message) for each input that names nothing.
    """
    files, problems, seen = [], [], set()

    def add(path):
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            files.append(path)

    for item in inputs:
        if os.path.isdir(item):
            names = sorted(
                n for n in os.listdir(item) if not n.startswith('.') and n.lower().endswith(IMAGE_EXTENSIONS)
            )
            names = [n for n in names if os.path.isfile(os.path.join(item, n))]
            if not names:
                problems.append((item, 'folder holds no image files'))
            for name in names:
                add(os.path.join(item, name))
        elif os.path.isfile(item):
            add(item)
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not matches:
                problems.append((item, 'pattern matches no file'))
            for path in matches:
                add(path)
        else:
            problems.append((item, 'no such file or folder'))
    return files, problems


def picture_stems(files):
    """The stem under which each file's optional pictures are written (``compare/<stem>.png``, ...).

    The file's stem, unless two inputs share it (``s.png``, ``s.jpg``): those use their whole
    file name (``compare/s.png.png``, ``compare/s.jpg.png``), which is unique among the outputs.

    Args:
        files (list[str]): Inputs with distinct file names (see :func:`_unique_names`).

    Returns:
        dict[str, str]: File -> picture stem, all distinct.
    """
    names = {path: os.path.basename(path) for path in files}
    stems = {path: os.path.splitext(name)[0] for path, name in names.items()}
    while True:
        count = {}
        for stem in stems.values():
            count[stem] = count.get(stem, 0) + 1
        clashing = [path for path, stem in stems.items() if count[stem] > 1 and stem != names[path]]
        if not clashing:
            return stems
        for path in clashing:
            stems[path] = names[path]


def planned_outputs(path, args, stem):
    """Every file :func:`process_file` writes for the input ``path``."""
    out = [os.path.join(args.output, os.path.basename(path))]
    if args.save_compare:
        out.append(_picture_path(args.output, 'compare', stem))
    if args.save_maps:
        out += [_picture_path(args.output, 'maps', stem, f'_{m}') for m in ('illumination', 'reflectance')]
    if args.save_seg:
        out.append(_picture_path(args.output, 'seg', stem))
    return out


def check_output_folder(files, args, stems):
    """Refuse an ``--output`` that is a file, and, without ``--overwrite``, outputs that exist.

    Raises:
        EnhanceError: naming ``--output`` and the first existing files.
    """
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise EnhanceError(f'--output {args.output} exists and is not a folder')
    if args.overwrite or not os.path.isdir(args.output):
        return
    existing = [
        out
        for path in files
        for out in planned_outputs(path, args, stems[path])
        if os.path.exists(out) and not os.path.samefile(out, path)  # the input itself: reported per file
    ]
    if existing:
        shown = ', '.join(existing[:3]) + (', ...' if len(existing) > 3 else '')
        raise EnhanceError(
            f'{len(existing)} output file(s) already exist in --output {args.output} ({shown}); pass --overwrite '
            'to replace them, or choose another --output folder'
        )


def _unique_names(files):
    """Split ``files`` into those with distinct file names and (file, message) for the later ones
    whose name is taken (outputs are written under the input's name)."""
    first, keep, clashes = {}, [], []
    for path in files:
        name = os.path.basename(path)
        if name in first:
            clashes.append((path, f'same file name as {first[name]}: the output would overwrite its result'))
        else:
            first[name] = path
            keep.append(path)
    return keep, clashes


# ---- outputs -------------------------------------------------------------------------------------
def _picture_path(output, folder, stem, suffix=''):
    return os.path.join(output, folder, f'{stem}{suffix}.png')


def process_file(enhancer, path, args, stem=None):
    """Read, enhance and write one file (and its optional pictures, named after ``stem``, default
    the file's stem; see :func:`picture_stems`); returns the output path."""
    name = os.path.basename(path)
    out_path = os.path.join(args.output, name)
    if os.path.exists(out_path) and os.path.samefile(out_path, path):
        raise EnhanceError('the output would overwrite the input; choose another --output folder')
    x, record = read_image(path)
    res = enhancer.enhance_tensor(x, maps=args.save_maps)
    write_image(out_path, res['out'], record)
    stem = os.path.splitext(name)[0] if stem is None else stem
    rgb8 = ImageRecord()
    if args.save_compare:
        write_image(_picture_path(args.output, 'compare', stem), torch.cat([x, res['out']], dim=-1), rgb8)
    if args.save_maps:
        write_image(_picture_path(args.output, 'maps', stem, '_illumination'), res['illumination'], rgb8)
        write_image(_picture_path(args.output, 'maps', stem, '_reflectance'), res['reflectance'], rgb8)
    if args.save_seg:
        write_image(_picture_path(args.output, 'seg', stem), enhancer.segmentation_overlay(x, res['out']), rgb8)
    return out_path


def _describe(err):
    text = str(err)
    if isinstance(err, torch.cuda.OutOfMemoryError) or 'out of memory' in text.lower():
        return f'out of memory ({text.splitlines()[0] if text else type(err).__name__}); retry with --tile 512'
    return text if isinstance(err, (OSError, EnhanceError, ValueError)) else f'{type(err).__name__}: {text}'


# ---- command line --------------------------------------------------------------------------------
def build_parser():
    """The ``deepspg-enhance`` argument parser."""
    parser = argparse.ArgumentParser(
        prog='deepspg-enhance',
        description='Enhance low-light images with DeepSPG (files, folders or glob patterns).',
    )
    parser.add_argument('inputs', nargs='+', help='image files, folders (not recursive) or glob patterns')
    parser.add_argument(
        '-opt', '--opt', dest='opt', help='test option file (network_g, prior, path); none: the shipped model'
    )
    parser.add_argument(
        '--weights',
        help='enhancer checkpoint (net_g_*.pth) or a known name; overrides path.pretrain_network_g '
        '(default without -opt: deepspg-espnetv2-photos, shipped)',
    )
    parser.add_argument(
        '--param-key', help="key of the weights in the checkpoint (default: path.param_key_g or 'params')"
    )
    parser.add_argument('--seg-checkpoint', help='segmentation prior checkpoint; overrides prior.seg_checkpoint')
    parser.add_argument('--allow-unsafe-checkpoint', action='store_true', help='unpickle trusted checkpoints')
    parser.add_argument(
        '--random-weights',
        action='store_true',
        help='untrained enhancer, ignoring path.pretrain_network_g (measurements)',
    )
    parser.add_argument('--output', '-o', required=True, help='output folder (results keep the input file names)')
    parser.add_argument('--tile', type=int, default=0, help='tile size in pixels; 0: whole image (default)')
    parser.add_argument('--overlap', type=int, default=None, help='minimum overlap of neighbouring tiles (default 64)')
    parser.add_argument('--prior-global', action='store_true', help='with tiles: run the prior once on the whole image')
    parser.add_argument('--prior-size', type=int, default=1024, help='longer side for --prior-global / --save-seg')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'], help='default: cuda if available')
    parser.add_argument('--half', action='store_true', help='fp16 inference (CUDA only)')
    parser.add_argument('--self-ensemble', action='store_true', help='average the 8 flips / rotations (8x slower)')
    parser.add_argument('--save-compare', action='store_true', help='also write compare/<name>.png: input | output')
    parser.add_argument(
        '--save-maps', action='store_true', help='also write maps/<name>_{illumination,reflectance}.png'
    )
    parser.add_argument('--save-seg', action='store_true', help='also write seg/<name>.png: segmentation overlay')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing results in --output (default: refuse)'
    )
    parser.add_argument(
        '--backend', default='torch', choices=['torch', 'onnxruntime'], help='torch (default) or onnxruntime'
    )
    parser.add_argument('--onnx', help='with --backend onnxruntime: the model written by deepspg-export')
    parser.add_argument('--threads', type=int, default=0, help='CPU threads (torch / onnxruntime); 0: default')
    return parser


def check_args(args):
    """The problem with the options ``args`` (a message naming the flag), or None; fills
    ``args.overlap`` (default 64) and ``args.overlap_is_default``."""
    if (args.backend == 'onnxruntime') != bool(args.onnx):
        return '--backend onnxruntime and --onnx FILE go together'
    args.overlap_is_default = args.overlap is None
    if args.overlap is None:
        args.overlap = OVERLAP_DEFAULT
    return check_run_options(args.tile, args.overlap, args.prior_size, args.threads, args.overlap_is_default)


def parse_args(argv=None):
    """Parse and check the command line (errors exit with status 2, as argparse does)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = check_args(args)
    if problem:
        parser.error(problem)
    return args


def run_options(args):
    """The per-image options of ``args`` (:meth:`DeepSPGEnhancer.from_model` takes them too)."""
    return {
        'tile': args.tile,
        'overlap': None if getattr(args, 'overlap_is_default', False) else args.overlap,
        'self_ensemble': args.self_ensemble,
        'prior_global': args.prior_global,
        'prior_size': args.prior_size,
    }


def build_enhancer(args, device):
    """The :class:`DeepSPGEnhancer` ``args`` ask for (the ONNX Runtime backend for ``--backend
    onnxruntime``), checked against ``--save-seg`` and ``--save-maps``."""
    flags = (('--half', args.half), ('--save-seg', args.save_seg), ('--prior-global', args.prior_global))
    refused = [flag for flag, on in flags if on]
    if args.backend == 'onnxruntime' and refused:
        raise EnhanceError(f'{", ".join(refused)}: not available with --backend onnxruntime (use --backend torch)')
    return DeepSPGEnhancer(
        args.opt,
        weights=args.weights,
        device=device if args.backend == 'torch' else args.device,
        half=args.half,
        param_key=args.param_key,
        seg_checkpoint=args.seg_checkpoint,
        allow_unsafe_checkpoint=args.allow_unsafe_checkpoint,
        random_weights=args.random_weights,
        onnx=args.onnx,
        threads=args.threads,
        **run_options(args),
    )


def load_model(args, device):
    """:func:`build_enhancer`, checked against ``--save-seg`` and ``--save-maps``."""
    enhancer = build_enhancer(args, device)
    if args.save_seg and enhancer.seg_prior is None:
        raise EnhanceError('--save-seg needs a network with a segmentation prior (network_g.use_semantics)')
    if args.save_maps and not enhancer.has_maps:
        raise EnhanceError(f'--save-maps needs a DeepSPG network, got {type(enhancer.net).__name__}')
    return enhancer


def main(argv=None):
    """Run the command line; returns the exit status (0: all images written, 1: some failed,
    2: bad command line / model)."""
    from basicsr.utils import get_root_logger
    from tqdm import tqdm

    args = parse_args(argv)
    get_root_logger()  # BasicSR's logger: warnings (e.g. random prior weights) on stderr
    try:
        device = resolve_device(args.device, args.half)
        files, failures = collect_inputs(args.inputs)
        if not files:
            raise EnhanceError('no input images: ' + '; '.join(f'{p}: {m}' for p, m in failures))
        files, clashes = _unique_names(files)
        failures += clashes
        stems = picture_stems(files)
        check_output_folder(files, args, stems)
        enhancer = load_model(args, device)
        print(f'deepspg-enhance: model: {enhancer.describe()}', file=sys.stderr)
        try:
            os.makedirs(args.output, exist_ok=True)
        except OSError as err:
            raise EnhanceError(f'--output {args.output}: cannot create the folder ({err})') from err
    except KeyboardInterrupt:
        print('deepspg-enhance: interrupted (Ctrl-C); nothing written', file=sys.stderr)
        return 130
    except Exception as err:  # command line, option file, checkpoints
        print(f'deepspg-enhance: error: {err}', file=sys.stderr)
        return 2
    for path, message in failures:
        print(f'deepspg-enhance: {path}: {message}', file=sys.stderr)
    requested = len(files) + len(failures)  # missing inputs and name clashes count as not written
    written = 0
    bar = tqdm(files, unit='image', disable=args.no_progress)
    try:
        for path in bar:
            bar.set_description(os.path.basename(path))
            try:
                process_file(enhancer, path, args, stems[path])
                written += 1
            except Exception as err:  # one bad image must not stop the others
                message = _describe(err)
                failures.append((path, message))
                tqdm.write(f'deepspg-enhance: failed: {path}: {message}', file=sys.stderr)
    except KeyboardInterrupt:
        bar.close()
        print(
            f'deepspg-enhance: interrupted (Ctrl-C): {written} of {requested} images written to {args.output}',
            file=sys.stderr,
        )
        return 130
    bar.close()
    print(f'deepspg-enhance: {written} of {requested} images written to {args.output}', file=sys.stderr)
    if failures:
        print(f'deepspg-enhance: {len(failures)} failed:', file=sys.stderr)
        for path, message in failures:
            print(f'  {path}: {message}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
