"""The compatibility shims: each fixes its upstream problem and is a no-op otherwise."""

import subprocess
import sys
from pathlib import Path

from deepspg_basicsr import compat

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def test_basicsr_imports_on_new_torchvision():
    import basicsr.data.degradations  # noqa: F401  (imports torchvision.transforms.functional_tensor)

    assert 'torchvision.transforms.functional_tensor' in sys.modules


def test_mmcv_ops_stub_point_sample_matches_hand_computation():
    import mmcv.ops

    if not getattr(mmcv.ops, 'DEEPSPG_STUB', False):
        pytest.skip('full MMCV installed: the stub is (correctly) not in use')
    feat = torch.arange(16.0).view(1, 1, 4, 4)
    # point (0.5, 0.5) in [0, 1] coordinates is the centre of the map: with align_corners=False
    # it lies between pixels (1, 1), (1, 2), (2, 1), (2, 2): mean of 5, 6, 9, 10
    points = torch.tensor([[[0.5, 0.5], [0.125, 0.125]]])
    out = mmcv.ops.point_sample(feat, points)
    assert out.shape == (1, 1, 2)
    assert out[0, 0, 0].item() == pytest.approx(7.5)
    assert out[0, 0, 1].item() == pytest.approx(0.0)  # centre of pixel (0, 0)
    ref = F.grid_sample(feat, (2 * points - 1).unsqueeze(2), align_corners=False).squeeze(3)
    assert torch.equal(out, ref)


def test_mmcv_ops_stub_reports_missing_ops_clearly():
    import mmcv.ops

    if not getattr(mmcv.ops, 'DEEPSPG_STUB', False):
        pytest.skip('full MMCV installed')
    from mmcv.ops import DeformConv2d  # importable placeholder

    with pytest.raises(RuntimeError, match='full MMCV'):
        DeformConv2d(3, 3, 3)


def test_mmseg_models_import():
    import mmseg.models  # noqa: F401


def test_stub_is_noop_when_real_ops_import(monkeypatch):
    # pretend mmcv.ops is a working module: stub_mmcv_ops must leave it alone
    import types

    real = types.ModuleType('mmcv.ops')
    monkeypatch.setitem(sys.modules, 'mmcv.ops', real)
    compat.stub_mmcv_ops()
    assert sys.modules['mmcv.ops'] is real


def test_hub_offline_respects_user_setting(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '0')
    monkeypatch.setattr(compat, '_hub_reachable', lambda timeout=2.0: False)
    compat.hub_offline_if_unreachable()
    import os

    assert os.environ['HF_HUB_OFFLINE'] == '0'


def test_hub_offline_set_when_unreachable(monkeypatch):
    import os

    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    monkeypatch.setattr(compat, '_hub_reachable', lambda timeout=2.0: False)
    compat.hub_offline_if_unreachable()
    assert os.environ['HF_HUB_OFFLINE'] == '1'


def test_resume_loader_replaced_and_cpu_safe(tmp_path):
    import basicsr.train

    assert getattr(basicsr.train.load_resume_state, '_deepspg', False)
    states = tmp_path / 'training_states'
    states.mkdir()
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
    torch.save({'epoch': 1, 'iter': 12, 'optimizers': [opt.state_dict()], 'schedulers': []}, states / '12.state')
    (states / '.30.state.abc.tmp').write_bytes(b'partial')  # an interrupted atomic save
    run_opt = {
        'auto_resume': True,
        'name': 'x',
        'num_gpu': 0,
        'path': {'training_states': str(states), 'models': str(tmp_path)},
    }
    state = basicsr.train.load_resume_state(run_opt)
    assert state['iter'] == 12
    assert run_opt['path']['resume_state'].endswith('12.state')


def test_repo_basicsr_folder_never_shadows_the_package():
    assert not (REPO / 'basicsr' / '__init__.py').exists()
    out = subprocess.run(
        [sys.executable, '-c', 'import basicsr, sys; print(basicsr.__file__)'],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # importing basicsr without the shims may fail on new torchvision; either way it must be the
    # pip package that is found, never the repository's launcher folder
    found = out.stdout.strip() or out.stderr
    assert 'site-packages' in found or 'dist-packages' in found, found
    assert str(REPO / 'basicsr') not in out.stdout


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_priors_on_cuda_match_cpu():
    from deepspg_basicsr.priors import CLIPPrior, SegmentationPrior

    from llie_test_utils import LIGHT_SEG, TINY_CLIP

    seg = SegmentationPrior(LIGHT_SEG)
    clip = CLIPPrior(TINY_CLIP, pretrained=None)
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        cpu_logits, cpu_emb = seg(x)['logits'], clip.encode_image(x)
        seg.cuda(), clip.cuda()
        gpu_logits, gpu_emb = seg(x.cuda())['logits'].cpu(), clip.encode_image(x.cuda()).cpu()
    assert torch.allclose(cpu_logits, gpu_logits, atol=1e-3, rtol=1e-3)
    assert torch.allclose(cpu_emb, gpu_emb, atol=1e-4)
