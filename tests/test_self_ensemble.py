"""Self-ensemble (x8): the transforms are inverted exactly, and the model recomputes the prior per transform."""

import math

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr.utils.self_ensemble import NUM_TRANSFORMS, apply_transform, invert_transform, self_ensemble

import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model
from llie_test_utils import train_opt
from torch import nn


@pytest.fixture(scope='module')
def image():
    return torch.rand(2, 3, 12, 20, generator=torch.Generator().manual_seed(0))


def test_each_transform_is_inverted_exactly_and_all_differ(image):
    seen = []
    for i in range(NUM_TRANSFORMS):
        t = apply_transform(image, i)
        assert t.shape[-2:] == (image.shape[-2:] if i % 2 == 0 else image.shape[-2:][::-1])
        assert torch.equal(invert_transform(t, i), image)
        assert not any(t.shape == s.shape and torch.equal(t, s) for s in seen)
        seen.append(t)
    with pytest.raises(ValueError, match='transform index'):
        apply_transform(image, 8)


def test_identity_net_gives_the_input_back(image):
    out = self_ensemble(lambda t: t, image)
    assert (out - image).abs().max().item() <= 1e-6
    assert out.data_ptr() != image.data_ptr()


def test_position_dependent_net_averages_the_four_axis_directions(image):
    # f(t) = t + row index (in the transformed frame). Transformed back, the ramp is one of i,
    # H-1-i, j, W-1-j, each twice over the 8 transforms: the mean is the constant (H + W - 2) / 4.
    # A wrong inverse would bring a ramp back (or fail on the size of a non-square image).
    def ramp_net(t):
        rows = torch.arange(t.shape[-2], dtype=t.dtype).view(-1, 1).expand(t.shape[-2:])
        return t + rows

    h, w = image.shape[-2:]
    out = self_ensemble(ramp_net, image)
    assert (out - image - (h + w - 2) / 4).abs().max().item() <= 1e-5


def _d4_blur(x):
    """A flip / rotation-equivariant filter: a symmetric 3x3 blur (zero padding), then sqrt."""
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    k = k.view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(x, k, padding=1, groups=x.shape[1]).clamp(min=0).sqrt()


class EquivariantSemanticNet(nn.Module):
    """Takes prior features like DeepSPG, records their shapes, and is itself D4-equivariant."""

    use_semantics = True
    c2f = False

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x, sem_feats, prior=None):
        self.calls.append((tuple(x.shape[-2:]), [tuple(f.shape[-2:]) for f in sem_feats]))
        return _d4_blur(x) + self.dummy


def test_model_self_ensemble_runs_the_prior_per_transform_and_is_exact_for_equivariant_nets():
    model = build_model(train_opt(is_train=False))
    net = EquivariantSemanticNet()
    model.net_g = net
    x = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(1)) * 0.3
    model.feed_data({'lq': x})
    model.test()
    plain = model.output
    model.opt['val'] = {'self_ensemble': True}
    net.calls.clear()
    model.test()
    assert (model.output - plain).abs().max().item() <= 1e-6
    assert len(net.calls) == NUM_TRANSFORMS
    for i, (size, feat_sizes) in enumerate(net.calls):
        assert size == ((24, 40) if i % 2 == 0 else (40, 24))
        # HRNet branch 0 at stride 4 of *this* (transformed) input: the prior ran on it
        assert feat_sizes[0] == (math.ceil(size[0] / 4), math.ceil(size[1] / 4))


def test_model_self_ensemble_with_deepspg_differs_and_stays_in_range():
    torch.manual_seed(0)
    model = build_model(train_opt(is_train=False, network_g={'c2f': False}))
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(2)) * 0.3
    model.feed_data({'lq': x})
    model.test()
    plain = model.output
    model.opt['val'] = {'self_ensemble': True}
    model.test()
    ens = model.output
    assert ens.shape == plain.shape and 0 <= ens.min() and ens.max() <= 1
    assert (ens - plain).abs().max().item() > 1e-4  # DeepSPG (and its prior) are not equivariant
    net = model.net_g
    with torch.no_grad():
        expected = (
            sum(invert_transform(model.enhance(net, apply_transform(x, i)), i) for i in range(NUM_TRANSFORMS))
            / NUM_TRANSFORMS
        )
    assert (ens - expected.clamp(0, 1)).abs().max().item() <= 1e-6
