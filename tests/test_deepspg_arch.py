"""DeepSPG architecture: any input size, gradients, presets."""

from deepspg_basicsr.archs.deepspg_arch import DeepSPG

import pytest
import torch


def _feats(b, h, w, channels=(18, 36, 72)):
    return [torch.rand(b, c, -(-h // s), -(-w // s)) for c, s in zip(channels, (4, 8, 16))]


def test_padding_does_not_leak_into_the_crop():
    # a pixel far from the bottom/right border does not depend on the padded size
    torch.manual_seed(0)
    net = DeepSPG(num_feat=8, num_blocks=[1, 1, 1], illum_feat=8, use_semantics=False).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        full = net(x)
        cropped = net(x[..., :61, :62])
    assert torch.allclose(full[..., :40, :40], cropped[..., :40, :40], atol=1e-5)


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    net = DeepSPG(num_feat=8, num_blocks=[1, 1, 1], illum_feat=8, sem_channels=[18, 36, 72])
    with torch.no_grad():  # the exposure head's zero last layer passes no gradient to its first until a step moves it
        net.exposure.fc2.weight.normal_(0, 0.01)
    feats = _feats(2, 32, 40)
    for f in feats:
        f.requires_grad_(True)
    out = net(torch.rand(2, 3, 32, 40), feats)
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_c2f_runs_the_prior_on_the_coarse_result():
    torch.manual_seed(0)
    net = DeepSPG(num_feat=8, num_blocks=[1, 1, 1], illum_feat=8, sem_channels=[18, 36, 72]).eval()
    x = torch.rand(1, 3, 32, 32)
    seen = []

    def prior(img):
        seen.append(img)
        return _feats(1, 32, 32)

    with torch.no_grad():
        aux = net(x, _feats(1, 32, 32), prior=prior, return_aux=True)
    assert len(seen) == 1 and torch.equal(seen[0], aux['coarse'].clamp(0, 1))
    assert not torch.equal(aux['coarse'], aux['out'])
    net.c2f = False
    with torch.no_grad():
        assert net(x, _feats(1, 32, 32), prior=prior, return_aux=True)['coarse'] is None
    assert len(seen) == 1


def test_semantics_off_has_no_sem_blocks_and_needs_no_features():
    net = DeepSPG(use_semantics=False)
    assert not any('sems' in n for n, _ in net.named_parameters())
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_presets_parameter_counts():
    base = sum(p.numel() for p in DeepSPG().parameters())
    large = sum(p.numel() for p in DeepSPG(num_feat=32, illum_feat=32).parameters())
    assert abs(base / 0.55e6 - 1) <= 0.10, base
    assert abs(large / 2.13e6 - 1) <= 0.10, large


@pytest.mark.parametrize(
    'kwargs, params_target, gflops_target',
    [({}, 0.55e6, 6.91), ({'num_feat': 32, 'illum_feat': 32}, 2.13e6, 26.03)],
    ids=['base', 'large'],
)
def test_presets_fvcore_size_targets(kwargs, params_target, gflops_target):
    from deepspg_basicsr.utils.complexity import count_deepspg

    params, gflops = count_deepspg(DeepSPG(**kwargs), 256)
    assert abs(params / params_target - 1) <= 0.10, params
    assert abs(gflops / gflops_target - 1) <= 0.15, gflops


def test_sem_drop_sends_dropped_samples_down_the_no_semantics_path():
    torch.manual_seed(0)
    kw = dict(num_feat=8, num_blocks=[1, 1, 1], illum_feat=8, sem_channels=[18, 36, 72])
    net = DeepSPG(sem_drop=0.5, **kw)
    with torch.no_grad():  # a non-identity exposure head, so its input (the deepest level) matters
        net.exposure.fc2.weight.normal_(0, 0.1)
    plain = DeepSPG(use_semantics=False, **kw)
    missing, unexpected = plain.load_state_dict(net.state_dict(), strict=False)
    assert missing == [] and unexpected and all(k.startswith('sems.') for k in unexpected)
    full = DeepSPG(**kw)
    full.load_state_dict(net.state_dict())
    plain.eval()
    full.eval()
    x, feats = torch.rand(8, 3, 32, 32), _feats(8, 32, 32)
    torch.manual_seed(3)
    keep = torch.rand(8, 1, 1, 1) >= 0.5
    assert 0 < int(keep.sum()) < 8
    torch.manual_seed(3)
    with torch.no_grad():
        out = net(x, feats)  # training mode: draws the same mask
        want = torch.where(keep, full(x, feats), plain(x))
    assert torch.allclose(out, want, atol=1e-6)
    assert not torch.allclose(full(x, feats)[~keep.flatten()], plain(x)[~keep.flatten()], atol=1e-3)
    net.eval()  # evaluation keeps every SEM block
    with torch.no_grad():
        assert torch.equal(net(x, feats), full(x, feats))
    with pytest.raises(ValueError, match='sem_drop'):
        DeepSPG(sem_drop=1.0, **kw)
