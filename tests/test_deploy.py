"""deepspg-export and the ONNX Runtime backend: parity with PyTorch, metadata, errors, the CLI."""

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
import contextlib
import copy
import hashlib
import io
import json

from deepspg_basicsr import enhance as E
from deepspg_basicsr import export as X
from deepspg_basicsr.data.demo_data import make_demo_data
from deepspg_basicsr.deploy import ort_backend
from deepspg_basicsr.deploy.batchnorm_fold import fold_batchnorm
from deepspg_basicsr.priors.segmentation_prior import build_segmentation_prior

import cv2
import numpy as np
import onnx  # onnx, onnxruntime and onnxscript are test extras (setup.py): required, not skipped
import onnxruntime  # noqa: F401
import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) translates with it)
import pytest
import torch
import torch.nn.functional as F
import yaml
from llie_test_utils import BASE_TRAIN_OPT, LIGHT_SEG, write_test_option_file

NET = BASE_TRAIN_OPT['network_g']
#: fp32 parity of the ONNX pipeline with the PyTorch pipeline (the issue's bound; measured ~3e-7).
PARITY_ATOL = 1e-4


#: What the fixture's ``deepspg-export`` run printed and the library calls it made (args, result).
EXPORT_RUN = {}


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """The demo-sized DeepSPG + HRNet-W18-small (random prior) exported once through the command line
    with its options (``--param-key params_ema --export-size 48 --int8-calibration DIR
    --calibration-size 32 48 --verify``; the checkpoint ``ema.pth`` holds other weights under
    ``params``), with its model; :data:`EXPORT_RUN` records the run."""
    root = tmp_path_factory.mktemp('deploy')
    model = write_test_option_file(root)
    state = model.net_g.state_dict()
    other = {k: v + 0.05 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({'params': other, 'params_ema': state}, root / 'ema.pth')
    demo = make_demo_data(str(root / 'demo'))
    assert demo is not None
    low = sorted((root / 'demo' / 'LOL-v1' / 'eval15' / 'low').iterdir())
    (root / 'calib').mkdir()
    for p in low[:2]:
        (root / 'calib' / p.name).write_bytes(p.read_bytes())
    argv = ['-opt', str(root / 'test.yml'), '--weights', str(root / 'ema.pth'), '--output', str(root / 'm.onnx')]
    argv += ['--param-key', 'params_ema', '--export-size', '48', '--verify']
    argv += ['--int8-calibration', str(root / 'calib'), '--calibration-size', '32', '48']
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        for name in ('export_model', 'verify'):
            mp.setattr(X, name, _spy(name, getattr(X, name)))
        assert X.main(argv) == 0
    EXPORT_RUN['printed'] = printed.getvalue()
    return root, model, low


def _spy(name, fn):
    def wrapped(*args, **kwargs):
        EXPORT_RUN[name] = (args, fn(*args, **kwargs))
        return EXPORT_RUN[name][1]

    return wrapped


def _read(path):
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


def test_onnx_pipeline_matches_pytorch_at_sizes_other_than_the_export_size(exported):
    root, model, low = exported
    session = ort_backend.OrtSession(str(root / 'm.onnx'), threads=1)
    images = {p.name: _read(p) for p in low}
    cases = [images['astronaut.png'], images['chelsea.png']]  # 227x227 and 201x303 (export: 48x48)
    cases.append(F.interpolate(images['coffee.png'], size=(400, 600), mode='bilinear', align_corners=False))
    assert [tuple(c.shape[-2:]) for c in cases] == [(227, 227), (201, 303), (400, 600)]
    net = model.net_g.eval()
    for x in cases:
        with torch.inference_mode():
            ref = model.enhance(net, x, return_aux=True)
        out, illum, refl = session.run(x)
        assert out.shape == x.shape
        assert float((out - ref['out']).abs().max()) <= PARITY_ATOL
        assert float((illum - ref['illumination']).abs().max()) <= PARITY_ATOL
        assert float((refl - ref['reflectance']).abs().max()) <= PARITY_ATOL
        assert float((out - x).abs().mean()) > 1e-3  # it computed something


def test_metadata_records_the_files_and_the_convention(exported):
    root, _, _ = exported
    meta = json.loads((root / 'm.onnx.json').read_text())
    assert meta['kind'] == 'pipeline' and meta['opset'] == X.OPSET
    assert meta['checkpoint_sha256'] == hashlib.sha256((root / 'ema.pth').read_bytes()).hexdigest()
    assert meta['option_file_sha256'] == hashlib.sha256((root / 'test.yml').read_bytes()).hexdigest()
    assert meta['prior']['seg_config'] == LIGHT_SEG and meta['prior']['random_weights'] is True
    assert meta['prior']['seg_branches'] == [0, 1, 2] and meta['c2f'] is True
    assert 'RGB in [0, 1], NCHW' in meta['inputs']['lq'] and meta['versions']['torch'] == torch.__version__
    proto = onnx.load(str(root / 'm.onnx'), load_external_data=False)
    assert X.OPSET in [o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')]
    assert json.loads({p.key: p.value for p in proto.metadata_props}['deepspg']) == meta
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == [1, 3] and all(isinstance(d, str) for d in dims[2:])  # height, width dynamic


def test_export_errors_name_the_file_or_the_option(exported, tmp_path, capsys):
    root, _, _ = exported
    wrong = copy.deepcopy(NET)
    wrong['num_feat'] = 12  # the checkpoint holds num_feat 8
    (tmp_path / 'wrong.yml').write_text(yaml.safe_dump({'network_g': wrong, 'prior': {'seg_config': LIGHT_SEG}}))
    argv = ['-opt', str(tmp_path / 'wrong.yml'), '--weights', str(root / 'net_g.pth')]
    argv += ['--output', str(tmp_path / 'w.onnx')]
    assert X.main(argv) == 2
    err = capsys.readouterr().err
    assert str(root / 'net_g.pth') in err and 'does not match' in err
    assert not (tmp_path / 'w.onnx').exists()
    amp = {'network_g': NET, 'prior': {'seg_config': LIGHT_SEG}, 'perf': {'amp': 'bf16'}}
    (tmp_path / 'amp.yml').write_text(yaml.safe_dump(amp))
    argv = ['-opt', str(tmp_path / 'amp.yml'), '--random-weights', '--output', str(tmp_path / 'a.onnx')]
    assert X.main(argv) == 2
    assert 'perf.amp' in capsys.readouterr().err


def test_unexportable_networks_are_named():
    from deepspg_basicsr.archs import DeepSPG
    from deepspg_basicsr.deploy import ExportError, check_exportable

    with pytest.raises(ExportError, match='network_g.text_guidance'):
        check_exportable(DeepSPG(num_feat=8, num_blocks=(1, 1, 1), text_guidance=True, text_dim=16), {})
    with pytest.raises(ExportError, match='network_g.type Conv2d'):
        check_exportable(torch.nn.Conv2d(3, 3, 1), {})
    with pytest.raises(ExportError, match='perf.compile'):
        check_exportable(DeepSPG(num_feat=8, num_blocks=(1, 1, 1)), {'perf': {'compile': True}})


def test_enhance_cli_onnxruntime_backend_matches_the_torch_backend(exported, tmp_path, capsys):
    root, model, low = exported
    src = tmp_path / 'in'
    src.mkdir()
    for p in low[:2]:
        (src / p.name).write_bytes(p.read_bytes())
    common = [str(src), '--device', 'cpu', '--no-progress', '--tile', '128', '--overlap', '32', '--save-maps']
    torch_argv = common + ['-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth')]
    assert E.main(torch_argv + ['--output', str(tmp_path / 'torch')]) == 0, capsys.readouterr().err
    ort_argv = common + ['--backend', 'onnxruntime', '--onnx', str(root / 'm.onnx'), '--threads', '1']
    assert E.main(ort_argv + ['--output', str(tmp_path / 'ort')]) == 0, capsys.readouterr().err
    for p in low[:2]:
        for rel in (p.name, f'maps/{p.stem}_illumination.png'):
            a = cv2.imread(str(tmp_path / 'torch' / rel)).astype(int)
            b = cv2.imread(str(tmp_path / 'ort' / rel)).astype(int)
            assert a.shape == b.shape and np.abs(a - b).max() <= 1, rel  # 8-bit rounding of ~1e-7
    assert E.main(ort_argv + ['--output', str(tmp_path / 'x'), '--save-seg']) == 2
    assert '--save-seg: not available with --backend onnxruntime' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        E.parse_args([str(src), '--output', str(tmp_path), '--backend', 'onnxruntime'])  # no --onnx


def test_enhance_cli_self_ensemble_tiled_with_onnxruntime_equals_the_library_and_the_torch_backend(
    exported, tmp_path, capsys
):
    """``deepspg-enhance --backend onnxruntime --self-ensemble --tile 64 --overlap 16`` (the ensemble
    applied outside the ONNX model, per tile) writes what :class:`DeepSPGEnhancer` with the same
    settings returns (bit for bit), within 8-bit rounding of the torch backend's ensemble, and not
    the output without the ensemble.

    Fails if the ONNX Runtime backend drops the ensemble (``self_ens=False`` passed by
    ``DeepSPGEnhancer.enhance_tensor``: tried)."""
    from deepspg_basicsr.inference import DeepSPGEnhancer

    root, model, low = exported
    img = np.ascontiguousarray(cv2.imread(str(low[0]))[:96, :128])
    (tmp_path / 'in').mkdir()
    assert cv2.imwrite(str(tmp_path / 'in' / 'a.png'), img)
    settings = {'tile': 64, 'overlap': 16, 'self_ensemble': True}
    argv = [str(tmp_path / 'in' / 'a.png'), '--backend', 'onnxruntime', '--onnx', str(root / 'm.onnx')]
    argv += ['--threads', '1', '--device', 'cpu', '--no-progress', '--tile', '64', '--overlap', '16']
    assert E.main(argv + ['--self-ensemble', '--output', str(tmp_path / 'out')]) == 0, capsys.readouterr().err
    got = cv2.imread(str(tmp_path / 'out' / 'a.png'), cv2.IMREAD_UNCHANGED).astype(int)
    library = DeepSPGEnhancer(onnx=str(root / 'm.onnx'), device='cpu', threads=1, **settings).enhance(img)
    assert np.array_equal(got, library)
    torch_backend = DeepSPGEnhancer.from_model(model, **settings).enhance(img)
    assert np.abs(got - torch_backend).max() <= 1
    plain = DeepSPGEnhancer.from_model(model, tile=64, overlap=16).enhance(img)
    assert np.abs(got - plain).max() > 2


def test_hrnet_pruned_branches_are_the_full_forward_and_folding_is_rounding(exported):
    _, model, _ = exported
    prior = build_segmentation_prior(model.opt['prior'])  # as built: the model's own is folded (perf default)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.seg_prior.backbone.modules())
    x = torch.rand(1, 3, 75, 93, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full = prior(x, return_logits=False)['feats']
        part = prior(x, return_logits=False, branches=[2, 0, 1])['feats']
        folded = copy.deepcopy(prior)
        assert fold_batchnorm(folded) > 0
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.backbone.modules())
        fold = folded(x, return_logits=False, branches=[0, 1, 2])['feats']
    assert all(torch.equal(a, b) for a, b in zip([full[2], full[0], full[1]], part))  # bit-identical
    assert all(float((a - b).abs().max()) < 1e-5 for a, b in zip(full[:3], fold))


def test_int8_calibration_without_images_names_the_folder(tmp_path):
    """(The int8 export itself: ``test_export_command_line_param_key_export_size_int8_and_verify...``.)"""
    from deepspg_basicsr.deploy.quantize import calibration_images

    with pytest.raises(ValueError, match='calibration folder'):
        calibration_images(str(tmp_path / 'empty'))


def test_no_fold_bn_keeps_the_prior_batchnorms_and_still_matches(exported, tmp_path):
    # the model's prior is folded by default (perf.fold_prior_bn); --no-fold-bn must export it as built
    root, model, low = exported
    out = tmp_path / 'bn.onnx'
    argv = ['-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth'), '--output', str(out)]
    assert X.main(argv + ['--no-fold-bn']) == 0
    count = lambda p: sum(n.op_type == 'BatchNormalization' for n in onnx.load(str(p)).graph.node)  # noqa: E731
    assert count(out) > 0 and count(root / 'm.onnx') == 0
    assert json.loads((tmp_path / 'bn.onnx.json').read_text())['prior']['batchnorm_folded'] is False
    x = _read(low[0])
    with torch.inference_mode():
        ref = model.enhance(model.net_g.eval(), x)
    assert float((ort_backend.OrtSession(str(out), threads=1).run(x)[0] - ref).abs().max()) <= PARITY_ATOL


def test_pipeline_runs_the_enhancer_channels_last_eagerly_with_the_same_output(exported):
    from deepspg_basicsr.deploy.pipeline import DeepSPGPipeline

    _, model, _ = exported
    net = model.get_bare_model(model.net_g).eval()
    seen = []
    nchw = DeepSPGPipeline(net, model.seg_prior, model.seg_branches, channels_last=False).eval()
    fast = DeepSPGPipeline(net, model.seg_prior, model.seg_branches).eval()  # auto: channels-last on the CPU
    encode = net.encode
    net.encode = lambda x: seen.append(x.is_contiguous(memory_format=torch.channels_last)) or encode(x)
    try:
        x = torch.rand(1, 3, 61, 87, generator=torch.Generator().manual_seed(3)) * 0.3
        with torch.inference_mode():
            a, b = nchw(x), fast(x)
    finally:
        del net.encode
    assert seen == [False, True]
    for u, v in zip(a, b):
        assert u.shape == v.shape == (1, 3, 61, 87) and v.is_contiguous()
        assert float((u - v).abs().max()) <= 1e-5


def test_export_command_line_param_key_export_size_int8_and_verify_do_what_the_library_calls_do(exported, tmp_path):
    """The fixture's ``deepspg-export`` run, each flag checked against the library call it wraps:

    * ``--param-key params_ema``: the model's weights are exported, not the checkpoint's other
      ``params`` (ONNX Runtime equals :meth:`DeepSPGModel.enhance`; also every parity test here);
    * ``--export-size 48``: :func:`export_model` got :func:`_example_inputs` at 48x48;
    * ``--int8-calibration``: the int8 model gives exactly the output of :func:`quantize_int8` on
      :func:`calibration_images` of the folder at ``--calibration-size``, and stays close to fp32;
    * ``--verify``: prints what :func:`verify` returned, within the parity bound.

    Fails if the flags are not passed on (tried: ``param_key=None`` in ``build_export_model``, which
    exports ``params``; ``--export-size`` replaced by 64; ``--calibration-size`` dropped).
    """
    from deepspg_basicsr.deploy import quantize

    root, model, low = exported
    meta = json.loads((root / 'm.onnx.json').read_text())
    assert meta['param_key'] == 'params_ema' and meta['export_size'] == 48
    x = _read(low[1])
    with torch.inference_mode():
        ref = model.enhance(model.net_g.eval(), x)
    fp32 = ort_backend.OrtSession(str(root / 'm.onnx'), threads=1).run(x)[0]
    assert float((fp32 - ref).abs().max()) <= PARITY_ATOL

    (module, inputs, path, _), _ = EXPORT_RUN['export_model']
    assert path == str(root / 'm.onnx') and len(inputs) == 1
    assert torch.equal(inputs[0], X._example_inputs(module, model, 48)[0])

    images = quantize.calibration_images(str(root / 'calib'), (32, 48))
    assert len(images) == 2 and images[0].shape == (1, 3, 32, 48)
    library = quantize.quantize_int8(str(root / 'm.onnx'), str(tmp_path / 'library.int8.onnx'), images)
    int8 = root / 'm.int8.onnx'
    assert any(n.op_type == 'QuantizeLinear' for n in onnx.load(str(int8)).graph.node)
    got = ort_backend.OrtSession(str(int8), threads=1).run(x)[0]
    assert torch.equal(got, ort_backend.OrtSession(library, threads=1).run(x)[0])
    mse = float(((got.clamp(0, 1) - fp32.clamp(0, 1)) ** 2).mean())
    assert 0 < mse and 10 * np.log10(1 / mse) > 30  # changed, but not broken (random weights)
    record = json.loads((root / 'm.int8.onnx.json').read_text())
    assert record['quantized'] == {'int8_static_qdq': True, 'calibration': str(root / 'calib')}

    (verified, _, _), worst = EXPORT_RUN['verify']
    assert verified == str(root / 'm.onnx') and 0 < worst <= PARITY_ATOL
    assert f'max |onnxruntime - torch| at 227x227 and 201x303: {worst:.3g}' in EXPORT_RUN['printed']


def test_enhancer_only_export_from_the_command_line_equals_one_enhancer_pass(exported, tmp_path):
    """``deepspg-export --enhancer-only``: inputs ``lq, f0, f1, f2`` and the outputs of
    :class:`DeepSPGEnhancerOnly` (one pass of the network on the prior's features) at a size other
    than the export size.

    Fails if ``--enhancer-only`` is ignored (tried: ``args.enhancer_only`` read as False, which
    exports the whole pipeline with the one input ``lq``)."""
    from deepspg_basicsr.deploy.pipeline import DeepSPGEnhancerOnly

    root, model, low = exported
    out = tmp_path / 'e.onnx'
    argv = ['-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth'), '--output', str(out)]
    assert X.main(argv + ['--enhancer-only', '--export-size', '32']) == 0
    meta = json.loads((tmp_path / 'e.onnx.json').read_text())
    assert meta['kind'] == 'enhancer' and meta['inputs']['names'] == ['lq', 'f0', 'f1', 'f2']
    assert meta['c2f'] is False and meta['prior']['batchnorm_folded'] is False
    x = _read(low[0])[..., :75, :93]
    net = model.get_bare_model(model.net_g).eval()
    with torch.inference_mode():
        feats = model.sem_features(x)
        ref = DeepSPGEnhancerOnly(net)(x, *feats)
    got = ort_backend.OrtSession(str(out), threads=1).run(x, *feats)
    assert len(got) == 3
    for a, b in zip(got, ref):
        assert a.shape == b.shape == x.shape and float((a - b).abs().max()) <= PARITY_ATOL
    with torch.inference_mode():
        full = model.enhance(net, x)
    assert float((got[0] - full).abs().max()) > 1e-3  # not the pipeline (which runs the C2F pass)
