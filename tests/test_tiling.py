"""Tiled inference: equal to untiled for local networks, smooth for global ones; pad / crop helpers."""

import math

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr.utils.tiling import axis_tiles, crop_to, pad_to_multiple, tiled_forward

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

# Tiled output of a local network must equal the untiled one within this (float32 rounding of
# the blend and of convolutions run on different sizes; observed about 1.5e-8).
LOCAL_ATOL = 1e-5


def random_conv_net(seed=0, layers=4, width=8):
    """Translation-equivariant net: ``layers`` random 3x3 convs + ReLU, receptive-field radius ``layers``."""
    torch.manual_seed(seed)
    chans = [3] + [width] * (layers - 1) + [3]
    mods = []
    for i in range(layers):
        mods.append(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


@pytest.fixture(scope='module')
def image():
    torch.manual_seed(1)
    return torch.rand(1, 3, 300, 451)


@torch.no_grad()
def test_local_net_tiled_equals_untiled(image):
    net = random_conv_net()  # radius 4 <= overlap // 4 = 8
    ref = net(image)
    out = tiled_forward(net, image, tile=128, overlap=32)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= LOCAL_ATOL
    # rectangular tiles, each reflect-padded at its bottom / right to a multiple of 8: the padding
    # changes the output only within the receptive-field radius (4) of the image's own bottom and
    # right edges (where ``ref`` sees zero padding); at inner tile edges it gets weight 0
    out = tiled_forward(net, image, tile=(100, 77), overlap=(36, 32), pad_multiple=8)
    assert (out - ref)[..., :-4, :-4].abs().max().item() <= LOCAL_ATOL
    assert (out - ref)[..., -4:, :].abs().max().item() > LOCAL_ATOL  # the border did change


@torch.no_grad()
def test_one_tile_is_exact(image):
    net = random_conv_net()
    assert torch.equal(tiled_forward(net, image, tile=512, overlap=32), net(image))
    assert torch.equal(tiled_forward(net, image, tile=(300, 451), overlap=32), net(image))
    small = image[..., :5, :3]
    assert torch.equal(tiled_forward(net, small, tile=128), net(small))


@torch.no_grad()
def test_one_tile_with_pad_multiple(image):
    net = random_conv_net()
    padded, (h, w) = pad_to_multiple(image, 16)
    expected = crop_to(net(padded), h, w)
    assert torch.equal(tiled_forward(net, image, tile=512, pad_multiple=16), expected)


def _global_net(t):
    """Not local: every output pixel depends on the tile mean."""
    return t - t.mean(dim=(2, 3), keepdim=True) + 0.5


@torch.no_grad()
def test_global_net_blend_is_smooth(image):
    h, w = image.shape[-2:]
    ramp = torch.linspace(0, 1, w).view(1, 1, 1, w) * torch.linspace(0.2, 1, h).view(1, 1, h, 1)
    x = 0.5 * image + ramp  # tile means differ strongly across the image
    tile, overlap = 128, 32

    def offset(ov):
        return tiled_forward(_global_net, x, tile=tile, overlap=ov) - x  # blend of per-tile constants

    def max_jump(field):
        return max(field.diff(dim=-1).abs().max().item(), field.diff(dim=-2).abs().max().item())

    field = offset(overlap)
    spread = field.max().item() - field.min().item()
    assert spread > 0.3  # the tiles do disagree
    # raised-cosine ramp over overlap // 2 = 16 pixels: a step of at most pi / (2 * 16) * spread
    bound = math.pi / overlap * spread + 1e-6
    assert max_jump(field) <= bound
    assert max_jump(offset(0)) > 5 * max_jump(field)  # hard stitching shows the seams this avoids


@pytest.mark.parametrize(
    'length,tile,overlap',
    [(300, 128, 32), (451, 128, 32), (129, 128, 32), (1000, 64, 8), (77, 10, 0), (50, 9, 8)],
)
def test_axis_windows_partition_of_unity(length, tile, overlap):
    tiles = axis_tiles(length, tile, overlap)
    total = torch.zeros(length, dtype=torch.float64)
    for i, (start, win) in enumerate(tiles):
        assert 0 <= start and start + win.numel() <= length
        assert (win >= 0).all()
        total[start : start + win.numel()] += win
        margin = overlap // 4
        if margin and i > 0:
            assert win[:margin].abs().max() == 0  # zero weight at inner tile edges
        if margin and i < len(tiles) - 1:
            assert win[-margin:].abs().max() == 0
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12)
    assert tiles[0][0] == 0 and tiles[-1][0] + tiles[-1][1].numel() == length


def test_bad_arguments(image):
    with pytest.raises(ValueError, match='overlap'):
        tiled_forward(_global_net, image, tile=32, overlap=32)
    with pytest.raises(ValueError, match='same spatial size'):
        tiled_forward(lambda t: F.avg_pool2d(t, 2), image, tile=128)
    with pytest.raises(ValueError, match='B, C, H, W'):
        tiled_forward(_global_net, image[0])
    with pytest.raises(ValueError, match='multiple'):
        pad_to_multiple(image, 0)


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    multiple=st.sampled_from([1, 4, 8, 16, 32]),
    mode=st.sampled_from(['reflect', 'replicate', 'constant']),
)
def test_pad_crop_round_trip(h, w, multiple, mode):
    x = torch.rand(1, 2, h, w)
    padded, size = pad_to_multiple(x, multiple, mode=mode)
    ph, pw = padded.shape[-2:]
    assert size == (h, w)
    assert ph % multiple == 0 and pw % multiple == 0
    assert h <= ph < h + multiple and w <= pw < w + multiple  # the smallest multiple
    assert torch.equal(crop_to(padded, *size), x)
    if mode == 'reflect' and ph - h < h and pw - w < w:  # torch's own reflect pad where it works
        assert torch.equal(padded, F.pad(x, (0, pw - w, 0, ph - h), mode='reflect'))


def test_reflect_pad_larger_than_image():
    x = torch.tensor([[[[0.0, 1.0, 2.0]]]])
    padded, _ = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1, 2, 1]  # repeated mirroring
    assert torch.equal(padded[0, 0], padded[0, 0, :1].expand(8, 8))  # height 1: replicated


class _StridedNet(nn.Module):
    """A local network that down-samples by 4 (two stride-2 convs) and up-samples back, padding its
    input to a multiple of 4 (reflect) and cropping the output, as DeepSPG does."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.down = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 4, 2, 1), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(8, 8, 2, 2), nn.ReLU(), nn.ConvTranspose2d(8, 3, 2, 2))

    def forward(self, x):
        h, w = x.shape[-2:]
        return self.up(self.down(pad_to_multiple(x, 4)[0]))[..., :h, :w]


@torch.no_grad()
def test_align_makes_a_down_sampling_net_tile_exactly(image):
    net = _StridedNet().eval()
    ref = net(image)  # 300 x 451: padded to 300 x 452 inside
    out = tiled_forward(net, image, tile=128, overlap=48, align=4)
    assert (out - ref).abs().max().item() <= LOCAL_ATOL
    # without alignment the tiles start at positions not divisible by 4: other sample phases
    assert (tiled_forward(net, image, tile=128, overlap=48) - ref).abs().max().item() > 1e-3
    starts = [s for s, _ in axis_tiles(452, 128, 48, align=4)]
    assert all(s % 4 == 0 for s in starts) and starts[-1] == 452 - 128
    assert all(b - a <= 128 - 48 for a, b in zip(starts, starts[1:]))
    with pytest.raises(ValueError, match='align'):
        tiled_forward(net, image, tile=128, overlap=126, align=4)


def test_with_box_passes_each_tiles_place():
    x = torch.rand(1, 1, 50, 70)
    boxes = []

    def fn(t, box):
        top, left, h, w = box
        boxes.append(box)
        assert torch.equal(t, x[..., top : top + h, left : left + w])
        return t

    assert torch.allclose(tiled_forward(fn, x, tile=32, overlap=8, with_box=True), x)
    assert {b[2:] for b in boxes} == {(32, 32)} and len(boxes) == 2 * 3
    boxes.clear()
    tiled_forward(fn, x, tile=128, with_box=True)
    assert boxes == [(0, 0, 50, 70)]
