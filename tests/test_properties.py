"""Property tests (hypothesis): any image size and value range through the network's padding,
the model with its prior, the enhancement path (tiles, image files)."""

import math

from deepspg_basicsr.archs import DeepSPG
from deepspg_basicsr.inference import DeepSPGEnhancer
from deepspg_basicsr.utils.image_io import read_image, write_image
from deepspg_basicsr.utils.tiling import tiled_forward

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from llie_test_utils import LIGHT_SEM_CHANNELS, train_opt

SIDE = st.integers(min_value=1, max_value=70)
#: Value ranges of an input image: uniform noise, black, white, nearly black, half saturated.
KINDS = ('uniform', 'zeros', 'ones', 'dark', 'clipped')
PROPS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _image(kind, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h, w, generator=g)
    if kind == 'zeros':
        return torch.zeros_like(x)
    if kind == 'ones':
        return torch.ones_like(x)
    if kind == 'dark':
        return x * 1e-3
    if kind == 'clipped':
        return (2 * x - 0.5).clamp(0, 1)
    return x


@pytest.fixture(scope='module')
def tiny_net():
    torch.manual_seed(0)
    net = DeepSPG(num_feat=4, num_blocks=(1, 1, 1), illum_feat=4, sem_channels=LIGHT_SEM_CHANNELS, num_heads=(1, 1, 1))
    proj = [torch.nn.Conv2d(3, c, 1) for c in LIGHT_SEM_CHANNELS]

    def prior(img):  # stand-in for the segmentation prior: features at strides 4, 8, 16
        h, w = img.shape[-2:]
        return [p(F.adaptive_avg_pool2d(img, (math.ceil(h / s), math.ceil(w / s)))) for p, s in zip(proj, (4, 8, 16))]

    return net.eval(), prior


@PROPS
@given(h=SIDE, w=SIDE, kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16))
def test_deepspg_any_size_and_range_keeps_the_size_and_stays_finite(tiny_net, h, w, kind, seed):
    net, prior = tiny_net
    x = _image(kind, h, w, seed)
    with torch.no_grad():
        res = net(x, prior(x), prior=prior, return_aux=True)
    for key in ('out', 'illumination', 'reflectance', 'coarse'):
        assert res[key].shape == x.shape, key
        assert torch.isfinite(res[key]).all(), key
    assert res['illumination'].min() >= net.illumination.floor - 1e-6 and res['illumination'].max() <= 1


@pytest.fixture(scope='module')
def model():
    """DeepSPGModel (test mode) with the light HRNet prior (random weights) and the C2F pass."""
    opt = train_opt(is_train=False, network_g={'num_feat': 4, 'illum_feat': 4, 'num_heads': [1, 1, 1]}, path={})
    torch.manual_seed(0)
    return build_model(opt)


def _enhance_tensor(model, x, **options):
    return DeepSPGEnhancer.from_model(model, **options).enhance_tensor(x)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=SIDE, w=SIDE, kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16))
def test_model_with_its_prior_any_size_and_range(model, h, w, kind, seed):
    x = _image(kind, h, w, seed)
    model.feed_data({'lq': x})
    model.test()
    assert model.output.shape == x.shape
    assert torch.isfinite(model.output).all() and model.output.min() >= 0 and model.output.max() <= 1


def _enhance_tensor(model, x, **options):
    return DeepSPGEnhancer.from_model(model, **options).enhance_tensor(x)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 48),
    w=st.integers(1, 48),
    tile=st.sampled_from([0, 16, 32]),
    overlap=st.sampled_from([0, 4, 8]),
    prior_global=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_enhance_path_tiles_any_size(model, h, w, tile, overlap, prior_global, seed):
    assume(tile == 0 or tile - overlap >= 4)  # the enhancer's down-sampling factor (what the CLI checks)
    x = _image('uniform', h, w, seed)
    out = _enhance_tensor(model, x, tile=tile, overlap=overlap, prior_global=prior_global, prior_size=64)['out']
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    if tile >= max(h, w):  # one tile: exactly the untiled result
        whole = _enhance_tensor(model, x, tile=0, prior_global=prior_global, prior_size=64)['out']
        assert torch.equal(out, whole)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    tile=st.integers(1, 24),
    overlap=st.integers(0, 23),
    align=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
)
def test_tiled_pointwise_function_equals_untiled(h, w, tile, overlap, align, seed):
    """The blending windows sum to one at every pixel, whatever the geometry."""
    assume(overlap < tile and tile // align * align - overlap >= align)
    x = _image('uniform', h, w, seed)

    def fn(t):
        return t * t + 0.25

    torch.testing.assert_close(tiled_forward(fn, x, tile=tile, overlap=overlap, align=align), fn(x))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    channels=st.sampled_from([1, 3, 4]),
    dtype=st.sampled_from([np.uint8, np.uint16]),
    ext=st.sampled_from(['.png', '.tif']),
    seed=st.integers(0, 2**16),
)
def test_image_file_round_trip_is_lossless(tmp_path_factory, h, w, channels, dtype, ext, seed):
    """read_image then write_image of the unchanged tensor gives back the file's pixels: depth,
    grey / colour and alpha kept (lossless codecs)."""
    folder = tmp_path_factory.mktemp('io')
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    img = rng.integers(0, top + 1, size=(h, w, channels) if channels > 1 else (h, w), dtype=dtype)
    src, dst = folder / f'in{ext}', folder / f'out{ext}'
    ok, buf = cv2.imencode(ext, img)
    assert ok
    buf.tofile(str(src))
    x, record = read_image(src)
    assert x.shape == (1, 3, h, w) and x.min() >= 0 and x.max() <= 1
    write_image(dst, x, record)
    back = cv2.imdecode(np.fromfile(str(dst), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == img.dtype and back.shape == img.shape
    np.testing.assert_array_equal(back, img)
