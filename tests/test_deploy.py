"""deepspg-export and the ONNX Runtime backend: parity with PyTorch, metadata, errors, the CLI."""

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
import copy
import hashlib
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


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """The demo-sized DeepSPG + HRNet-W18-small (random prior) exported once, with its model."""
    root = tmp_path_factory.mktemp('deploy')
    model = write_test_option_file(root)
    argv = ['-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth'), '--output', str(root / 'm.onnx')]
    assert X.main(argv) == 0
    demo = make_demo_data(str(root / 'demo'))
    assert demo is not None
    low = sorted((root / 'demo' / 'LOL-v1' / 'eval15' / 'low').iterdir())
    return root, model, low


def _read(path):
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


def test_onnx_pipeline_matches_pytorch_at_sizes_other_than_the_export_size(exported):
    root, model, low = exported
    session = ort_backend.OrtSession(str(root / 'm.onnx'), threads=1)
    images = {p.name: _read(p) for p in low}
    cases = [images['astronaut.png'], images['chelsea.png']]  # 227x227 and 201x303 (export: 64x64)
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
    assert meta['checkpoint_sha256'] == hashlib.sha256((root / 'net_g.pth').read_bytes()).hexdigest()
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


def test_int8_export_is_written_with_its_record_and_stays_close(exported, tmp_path):
    from deepspg_basicsr.deploy.quantize import calibration_images, quantize_int8

    root, _, low = exported
    images = calibration_images(str(low[0].parent), size=(64, 96), limit=2)
    assert len(images) == 2 and images[0].shape == (1, 3, 64, 96)
    int8 = quantize_int8(str(root / 'm.onnx'), str(tmp_path / 'm.int8.onnx'), images)
    proto = onnx.load(int8)
    assert any(n.op_type == 'QuantizeLinear' for n in proto.graph.node)
    x = _read(low[1])
    ref = ort_backend.OrtSession(str(root / 'm.onnx'), threads=1).run(x)[0].clamp(0, 1)
    got = ort_backend.OrtSession(int8, threads=1).run(x)[0].clamp(0, 1)
    mse = float(((got - ref) ** 2).mean())
    assert 0 < mse and 10 * np.log10(1 / mse) > 30  # changed, but not broken (measured ~55 dB, random weights)
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
