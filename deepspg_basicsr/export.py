"""``deepspg-export``: a trained DeepSPG (option file + checkpoint) as one ONNX model.

Usage::

    deepspg-export --output deepspg.onnx     # the shipped model (docs/MODEL.md)
    deepspg-export -opt options/test_DeepSPG_LOLv1.yml --weights net_g.pth --output deepspg.onnx
    python -m deepspg_basicsr.export -opt options/test_DeepSPG_demo.yml --output demo.onnx [--enhancer-only]

The default model is the whole inference pipeline, exactly what ``DeepSPGModel.test`` runs:
the segmentation prior (backbone branches ``prior.seg_branches``, BatchNorm folded into the
convolutions), the enhancer, the coarse-to-fine prior pass and decoder, padding to the
network's multiple of 4 and the crop back (:class:`~deepspg_basicsr.deploy.pipeline.DeepSPGPipeline`).
Input ``lq``: float32 RGB in [0, 1], NCHW, batch 1, any height and width >= 16 (dynamic);
outputs ``out`` (not clamped: clamp to [0, 1]), ``illumination``, ``reflectance``, each
(1, 3, H, W). ``--enhancer-only`` exports one pass of the enhancer with the prior's three
feature branches as the inputs ``f0``, ``f1``, ``f2`` instead (no prior, no coarse-to-fine).

Exported with ``torch.onnx.export(..., dynamo=True)``, opset :data:`OPSET`. Beside the model,
``<output>.json`` records what it contains: the option file and its sha256, the checkpoints and
their sha256 (or that the weights are random), the prior's config and branches, the input
convention, the opset and the versions (the same record is in the model's ``metadata_props``,
key ``deepspg``). Not exportable yet (a clear error naming the option): ``network_g.type``
other than ``DeepSPG`` (e.g. ``SemanticGuidedWrapper``), ``network_g.text_guidance: true``,
``perf.amp`` / ``perf.compile``; ``val.self_ensemble`` is not part of the model (the ONNX Runtime
backend of ``deepspg-enhance`` applies it outside).
"""

import argparse
import json
import os
import platform
import sys

import torch

from .deploy.pipeline import DeepSPGEnhancerOnly, DeepSPGPipeline, ExportError, check_exportable
from .weights import file_sha256

__all__ = ['OPSET', 'export_model', 'build_export_model', 'file_sha256', 'main']

#: ONNX opset of the exported models.
OPSET = 18
#: Smallest height / width the exported pipeline accepts (HRNet's four stride-2 stages).
MIN_SIZE = 16
OUTPUT_NAMES = ['out', 'illumination', 'reflectance']


def build_export_model(args):
    """Build the model from the option file and checkpoints (mismatches are errors naming the
    file) through the inference core, and the module to export.

    Returns:
        tuple[nn.Module, dict, DeepSPGModel]: The module (eval mode, CPU), the option file's
        contents and the BasicSR model.
    """
    from .inference import DeepSPGEnhancer

    enhancer = DeepSPGEnhancer(
        args.opt,
        weights=args.weights,
        device='cpu',
        param_key=args.param_key,
        seg_checkpoint=args.seg_checkpoint,
        allow_unsafe_checkpoint=args.allow_unsafe_checkpoint,
        random_weights=args.random_weights,
        fold_prior_bn=not args.no_fold_bn,
    )
    opt, model = enhancer.opt, enhancer.model
    net = enhancer.net.eval()
    check_exportable(net, opt)
    prior_opt = model.opt.get('prior') or {}
    if args.enhancer_only:
        if not net.use_semantics:
            raise ExportError('--enhancer-only needs network_g.use_semantics: true (it takes the prior features)')
        module = DeepSPGEnhancerOnly(net)
    elif net.use_semantics:
        module = DeepSPGPipeline(
            net,
            model.seg_prior,
            model.seg_branches,
            seg_scale=prior_opt.get('seg_scale', 1.0),
            c2f_seg_scale=prior_opt.get('c2f_seg_scale'),
            fold_bn=not args.no_fold_bn,
        )
    else:
        module = DeepSPGEnhancerOnly(net)  # no prior at all: the enhancer is the pipeline (input lq only)
    return module.eval(), opt, model


def _example_inputs(module, model, size):
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 0.3
    if isinstance(module, DeepSPGEnhancerOnly) and model.seg_prior is not None:
        with torch.no_grad():
            return (x, *model.sem_features(x))
    return (x,)


def export_model(module, inputs, path, opset=OPSET, output_names=OUTPUT_NAMES):
    """Export ``module`` on example ``inputs`` with dynamic height and width (dims 2, 3 of every
    input) to ``path``; returns the input names."""
    from torch.export import Dim

    names = ['lq', 'f0', 'f1', 'f2'][: len(inputs)]
    dynamic = tuple({2: Dim.DYNAMIC, 3: Dim.DYNAMIC} for _ in inputs)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            tuple(inputs),
            dynamo=True,
            opset_version=opset,
            input_names=names,
            output_names=list(output_names),
            dynamic_shapes=dynamic,
            optimize=True,
            verbose=False,
        )
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    program.save(path)
    return names


def metadata(args, opt, model, module, input_names):
    """The JSON record written beside the model."""
    import onnx

    net = model.get_bare_model(model.net_g)
    prior = model.seg_prior
    prior_opt = model.opt.get('prior') or {}
    weights = model.opt['path']['pretrain_network_g']
    seg_ckpt = None if prior is None else prior.checkpoint
    pipeline = isinstance(module, DeepSPGPipeline)
    return {
        'format': 'deepspg-onnx/1',
        'kind': 'pipeline' if pipeline else 'enhancer',
        'option_file': None if args.opt is None else os.path.abspath(args.opt),  # None: the weights' own record
        'option_file_sha256': None if args.opt is None else file_sha256(args.opt),
        'checkpoint': None if weights is None else os.path.abspath(weights),
        'checkpoint_sha256': file_sha256(weights),
        'param_key': model.opt['path']['param_key_g'],
        'random_enhancer_weights': weights is None,
        'network_g': dict(model.opt['network_g']),
        'prior': None
        if prior is None
        else {
            'seg_config': prior.config,
            'seg_checkpoint': None if seg_ckpt is None else os.path.abspath(seg_ckpt),
            'seg_checkpoint_sha256': file_sha256(seg_ckpt),
            'random_weights': prior.random_init,
            'seg_branches': list(model.seg_branches),
            'seg_scale': float(prior_opt.get('seg_scale', 1.0)),
            'c2f_seg_scale': float(prior_opt.get('c2f_seg_scale', prior_opt.get('seg_scale', 1.0))),
            'batchnorm_folded': pipeline and not args.no_fold_bn,
        },
        'c2f': bool(getattr(net, 'c2f', False) and getattr(net, 'use_semantics', False)) and pipeline,
        'inputs': {
            'names': input_names,
            'lq': 'float32 RGB in [0, 1], NCHW, batch 1, height and width dynamic (>= 16)',
            'f0_f1_f2': 'prior branches of SEM scales 1, 1/2, 1/4 (enhancer-only)' if len(input_names) > 1 else None,
        },
        'outputs': {n: 'float32 (1, 3, H, W), not clamped' for n in OUTPUT_NAMES},
        'down_factor': int(getattr(net, 'down_factor', 1)),
        'opset': args.opset,
        'export_size': args.export_size,
        'versions': {
            'deepspg_basicsr': __import__('deepspg_basicsr').__version__,
            'torch': torch.__version__,
            'onnx': onnx.__version__,
            'python': platform.python_version(),
        },
    }


def write_metadata(path, record):
    """Write ``record`` to ``<path>.json`` and into the model's ``metadata_props`` (key ``deepspg``)."""
    import onnx

    with open(path + '.json', 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=2)
    proto = onnx.load(path, load_external_data=False)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {'deepspg': json.dumps(record)})
    onnx.save(proto, path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='deepspg-export', description='Export a trained DeepSPG (option file + checkpoint) to ONNX.'
    )
    parser.add_argument(
        '-opt', '--opt', dest='opt', help='test option file (network_g, prior, path); none: the shipped model'
    )
    parser.add_argument('--weights', help='enhancer checkpoint or known name; overrides path.pretrain_network_g')
    parser.add_argument('--param-key', help='key of the weights in the checkpoint (default: path.param_key_g)')
    parser.add_argument('--seg-checkpoint', help='segmentation prior checkpoint; overrides prior.seg_checkpoint')
    parser.add_argument('--allow-unsafe-checkpoint', action='store_true', help='unpickle trusted checkpoints')
    parser.add_argument('--random-weights', action='store_true', help='untrained enhancer (measurements only)')
    parser.add_argument('--output', '-o', required=True, help='the .onnx file to write (and <output>.json)')
    parser.add_argument('--enhancer-only', action='store_true', help='the enhancer alone, prior features as inputs')
    parser.add_argument('--opset', type=int, default=OPSET, help=f'ONNX opset (default {OPSET})')
    parser.add_argument('--export-size', type=int, default=64, help='side of the example input (default 64)')
    parser.add_argument('--no-fold-bn', action='store_true', help="keep the prior's BatchNorms as separate nodes")
    parser.add_argument('--verify', action='store_true', help='run the model with ONNX Runtime against PyTorch')
    parser.add_argument(
        '--int8-calibration',
        metavar='FOLDER',
        help='also write <output stem>.int8.onnx: static int8 (QDQ) quantisation calibrated on these images '
        '(changes the output, see docs/BENCHMARKS.md)',
    )
    parser.add_argument('--calibration-size', type=int, nargs=2, default=[200, 300], metavar=('H', 'W'))
    args = parser.parse_args(argv)
    if args.export_size < MIN_SIZE:
        parser.error(f'--export-size must be at least {MIN_SIZE}')
    return args


def verify(path, module, model, sizes=((227, 227), (201, 303))):
    """Max |ONNX Runtime - PyTorch| of the outputs at ``sizes`` (other than the export size)."""
    from .deploy.ort_backend import OrtSession

    session = OrtSession(path)
    worst = 0.0
    for h, w in sizes:
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w)) * 0.3
        args = (x,)
        if isinstance(module, DeepSPGEnhancerOnly) and model.seg_prior is not None:
            with torch.no_grad():
                args = (x, *model.sem_features(x))
        with torch.no_grad():
            ref = module(*args)
        got = session.run(*args)
        worst = max(worst, max(float((g - r).abs().max()) for g, r in zip(got, ref)))
    return worst


def main(argv=None):
    """Run the command line; returns the exit status (0: written, 2: an error)."""
    from basicsr.utils import get_root_logger

    args = parse_args(argv)
    get_root_logger()
    try:
        module, opt, model = build_export_model(args)
        inputs = _example_inputs(module, model, args.export_size)
        names = export_model(module, inputs, args.output, args.opset)
        record = metadata(args, opt, model, module, names)
        write_metadata(args.output, record)
        if args.int8_calibration:
            if record['kind'] != 'pipeline':
                raise ExportError('--int8-calibration needs the whole pipeline (not --enhancer-only)')
            from .deploy.quantize import calibration_images, quantize_int8

            int8 = os.path.splitext(args.output)[0] + '.int8.onnx'
            images = calibration_images(args.int8_calibration, tuple(args.calibration_size))
            quantize_int8(args.output, int8, images)
            quantized = {'int8_static_qdq': True, 'calibration': os.path.abspath(args.int8_calibration)}
            write_metadata(int8, dict(record, quantized=quantized))
            print(f'deepspg-export: wrote {int8} (int8, calibrated on {len(images)} images)')
    except Exception as err:
        print(f'deepspg-export: error: {err}', file=sys.stderr)
        return 2
    if record['random_enhancer_weights'] or (record['prior'] or {}).get('random_weights'):
        print('deepspg-export: !!! THE EXPORTED MODEL HAS RANDOM WEIGHTS (see the .json) !!!', file=sys.stderr)
    print(f'deepspg-export: wrote {args.output} ({record["kind"]}, opset {args.opset}) and {args.output}.json')
    if args.verify:
        worst = verify(args.output, module, model)
        print(f'deepspg-export: max |onnxruntime - torch| at 227x227 and 201x303: {worst:.3g}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
