"""The structure levers of DeepSPG: the SSIM loss, the gated block, the error decomposition, the
proof's validation split."""

import inspect
import math
import os

from deepspg_basicsr.archs.deepspg_arch import DeepSPG
from deepspg_basicsr.archs.gated_block import GatedBlock
from deepspg_basicsr.losses import SPGSSIMLoss
from deepspg_basicsr.metrics.error_decomposition import decompose_error

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity


def test_ssim_loss_matches_skimage_inside_the_border():
    rng = np.random.default_rng(0)
    a = rng.random((40, 48, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    _, ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2, full=True
    )
    ta, tb = (torch.from_numpy(x).permute(2, 0, 1)[None].float() for x in (a, b))
    ours = 1 - SPGSSIMLoss(reduction='none')(ta, tb)[0].permute(1, 2, 0).numpy()
    inner = (slice(5, -5), slice(5, -5))
    np.testing.assert_allclose(ours[inner], ref[inner], atol=1e-4)
    assert SPGSSIMLoss()(ta, ta).item() == pytest.approx(0.0, abs=1e-6)
    assert SPGSSIMLoss(loss_weight=2.0, reduction='sum')(ta, tb).item() == pytest.approx(2 * (1 - ours).sum(), rel=1e-4)
    with pytest.raises(ValueError, match='Unsupported reduction'):
        SPGSSIMLoss(reduction='max')


def test_ssim_loss_prefers_a_small_offset_to_noise_of_the_same_mse():
    torch.manual_seed(0)
    gt = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    noise = torch.randn_like(gt) * 0.05
    offset = torch.full_like(gt, float(noise.pow(2).mean().sqrt()))
    assert torch.allclose((noise**2).mean(), (offset**2).mean(), rtol=1e-5)
    assert SPGSSIMLoss()(gt + offset, gt) < SPGSSIMLoss()(gt + noise, gt) / 10


def test_gated_block_starts_as_identity_and_learns():
    torch.manual_seed(0)
    block = GatedBlock(8, kernel_size=5, guide_channels=4)
    x, g = torch.randn(2, 8, 9, 11), torch.randn(2, 4, 9, 11)
    assert torch.equal(block(x, g), x)
    block(x, g).pow(2).sum().backward()
    assert block.beta.grad.abs().sum() > 0 and block.gamma.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='needs a guide'):
        block(x)
    with pytest.raises(ValueError, match='odd'):
        GatedBlock(8, kernel_size=4)
    # 1x1 C->2C, depth-wise k x k on 2C, attention and projection C->C, FFN C->2C and 2C/2->C, norms, scales
    c, k = 8, 5
    expected = (2 * c * c + 2 * c) + (2 * c * k * k + 2 * c) + 2 * (c * c + c) + (2 * c * c + 2 * c) + (c * c + c)
    expected += 4 * c + 2 * c + (4 * c + c)
    assert sum(p.numel() for p in block.parameters()) == expected


def test_gated_deepspg_options_and_earlier_checkpoints():
    kwargs = dict(num_feat=8, illum_feat=8, num_blocks=[1, 1, 2], sem_channels=[18, 36, 72])
    gated = DeepSPG(block_type='gated', dw_kernels=[3, 5, 7], illum_guide=True, **kwargs).eval()
    x = torch.rand(1, 3, 30, 22)
    feats = [torch.rand(1, c, 8, 6) for c in (18, 36, 72)]
    with torch.no_grad():
        assert gated(x, feats).shape == x.shape
    assert gated.encoders[2][1].dwconv.kernel_size == (7, 7)
    # the earlier architecture (conv3x3 residual blocks) keeps its state-dict keys
    old = DeepSPG(block_type='residual', **kwargs)
    assert 'encoders.0.0.conv1.weight' in old.state_dict()
    with pytest.raises(ValueError, match='block_type'):
        DeepSPG(block_type='dense', **kwargs)
    with pytest.raises(ValueError, match='illum_guide'):
        DeepSPG(block_type='residual', illum_guide=True, **kwargs)
    with pytest.raises(ValueError, match='dw_kernels'):
        DeepSPG(block_type='gated', dw_kernels=[3, 3], **kwargs)


def _photo(seed=0, h=96, w=128):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float64)
    img[:, : w // 2] = (60, 120, 180)  # a flat half
    img[:, w // 2 :] = rng.random((h, w - w // 2, 3)) * 200 + 20  # a textured half
    return cv2.GaussianBlur(img, (3, 3), 0.7).clip(0, 255).astype(np.uint8)


def test_error_decomposition_on_known_pairs():
    gt = _photo()
    same = decompose_error(gt, gt)
    assert same['psnr'] == float('inf') and same['exposure_stops'] == pytest.approx(0, abs=1e-9)
    assert same['colour_bias'] == pytest.approx(0, abs=1e-9) and same['detail_ratio'] == pytest.approx(1)
    assert same['flat_noise'] == pytest.approx(same['flat_noise_gt']) and same['gradient_error'] == 0
    # half as bright: one stop under, and nothing else once the exposure is matched (up to rounding)
    half = (gt.astype(np.float64) / 2).round().astype(np.uint8)
    d = decompose_error(half, gt)
    assert d['exposure_stops'] == pytest.approx(-1, abs=0.01)
    assert d['psnr_gt_mean'] > d['psnr'] + 10 and d['colour_bias'] < 1
    # a colour cast at the same mean grey level
    cast = np.clip(gt.astype(np.int16) + np.array([12, 0, -12]), 0, 255).astype(np.uint8)
    assert decompose_error(cast, gt)['colour_bias'] == pytest.approx(np.sqrt(2 * 144 / 3), rel=0.1)
    # noise in the flat half shows as flat noise; blur shows as lost detail
    rng = np.random.default_rng(1)
    noisy = np.clip(gt + rng.normal(0, 6, gt.shape), 0, 255).astype(np.uint8)
    n = decompose_error(noisy, gt)
    assert n['flat_noise'] > 3 and n['flat_noise_gt'] < 0.5
    blurred = cv2.GaussianBlur(gt, (7, 7), 2.0)
    b = decompose_error(blurred, gt)
    assert b['detail_ratio'] < 0.7 and n['detail_ratio'] > 1
    with pytest.raises(ValueError, match='one size'):
        decompose_error(gt[:10], gt)


def test_validation_root_holds_out_training_photos(tmp_path):
    from deepspg_basicsr.bench.proof import merge_sections, validation_root

    names = [f'p{i:02d}.png' for i in range(10)]
    for side in ('low', 'high'):
        os.makedirs(tmp_path / 'src' / 'our485' / side)
        for n in names:
            (tmp_path / 'src' / 'our485' / side / n).write_bytes(n.encode())
    root = validation_root(str(tmp_path / 'src'), 3, str(tmp_path / 'val'))
    held = sorted(os.listdir(os.path.join(root, 'eval15', 'low')))
    kept = sorted(os.listdir(os.path.join(root, 'our485', 'high')))
    assert held == ['p00.png', 'p03.png', 'p06.png'] and len(kept) == 7 and not set(held) & set(kept)
    assert open(os.path.join(root, 'eval15', 'high', 'p03.png'), 'rb').read() == b'p03.png'
    assert validation_root(str(tmp_path / 'src'), 3, str(tmp_path / 'val')) == root  # again: no error
    with pytest.raises(SystemExit, match='--val 10'):
        validation_root(str(tmp_path / 'src'), 10, str(tmp_path / 'v2'))
    base = {'network_g': {'a': 1}, 'train': {'x': {'type': 'L1Loss'}}}
    merged = merge_sections(base, {'network_g': {'b': 2}, 'prior': {'c': 3}})
    assert merged == {'network_g': {'a': 1, 'b': 2}, 'train': {'x': {'type': 'L1Loss'}}, 'prior': {'c': 3}}
    assert base == {'network_g': {'a': 1}, 'train': {'x': {'type': 'L1Loss'}}}


def test_filter_head_mixes_smoothed_reflectance_per_pixel():
    from deepspg_basicsr.archs.filter_head import FilterHead
    from deepspg_basicsr.utils.gaussian import gaussian_taps

    assert gaussian_taps(2.0).numel() == 9 and gaussian_taps(2.0).sum().item() == pytest.approx(1.0)
    torch.manual_seed(0)
    head = FilterHead(4, sigmas=[1.0, 2.0])
    feat, refl0 = torch.randn(1, 4, 20, 24), torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        head.residual.weight.zero_()
        head.residual.bias.zero_()
        head.weights.weight.zero_()
        head.weights.bias.copy_(torch.tensor([50.0, 0.0, 0.0]))  # all weight on the identity
        assert torch.allclose(head(feat, refl0), refl0, atol=1e-6)
        head.weights.bias.copy_(torch.tensor([0.0, 0.0, 50.0]))  # all weight on the widest Gaussian
        smooth = head(feat, refl0)
        assert smooth.std() < refl0.std() / 2
        # a constant stays constant (replicate padding, normalised taps)
        const = torch.full_like(refl0, 0.3)
        assert torch.allclose(head(feat, const), const, atol=1e-6)
        # interior pixel: the separable Gaussian by hand
        g = gaussian_taps(2.0)
        k = g[:, None] * g[None, :]
        assert smooth[0, 1, 10, 12].item() == pytest.approx((refl0[0, 1, 6:15, 8:17] * k).sum().item(), rel=1e-5)


def test_illumination_at_a_coarser_scale_is_smooth():
    torch.manual_seed(0)
    kwargs = dict(num_feat=8, illum_feat=8, num_blocks=[1, 1, 1], use_semantics=False, head='filter')
    x = (torch.rand(1, 3, 32, 40) * 0.2).clamp(0, 1)
    fine, coarse = DeepSPG(illum_scale=1, **kwargs).eval(), DeepSPG(illum_scale=4, **kwargs).eval()
    coarse.load_state_dict(fine.state_dict())  # same parameters, only where L is estimated differs
    with torch.no_grad():
        l_fine = fine(x, return_aux=True)['illumination']
        l_coarse = coarse(x, return_aux=True)['illumination']

    def roughness(m):
        return (m[..., 1:, :] - m[..., :-1, :]).abs().mean() + (m[..., 1:] - m[..., :-1]).abs().mean()

    assert l_coarse.shape == x.shape and roughness(l_coarse) < roughness(l_fine) / 2
    with pytest.raises(ValueError, match='illum_scale'):
        DeepSPG(illum_scale=3, **kwargs)
    with pytest.raises(ValueError, match='head'):
        DeepSPG(**dict(kwargs, head='mlp'))


def test_proof_analysis_table_and_crops_figure(tmp_path):
    from argparse import Namespace

    from deepspg_basicsr.bench.core import Report
    from deepspg_basicsr.bench.proof_analysis import analyse

    gt_imgs = [_photo(0, 128, 160), _photo(1, 128, 160)]
    pairs = [
        (f'p{i}.png', torch.zeros(1, 3, 128, 160), torch.from_numpy(g).permute(2, 0, 1)[None] / 255.0)
        for i, g in enumerate(gt_imgs)
    ]
    gts = [np.round(p[2][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8) for p in pairs]
    rng = np.random.default_rng(0)
    noisy = [[np.clip(g + rng.normal(0, 8, g.shape), 0, 255).astype(np.uint8) for g in gts] for _ in range(2)]
    networks = [('exact', [gts, gts]), ('noisy', noisy)]
    rep = Report('proof', argv=['--analyse'], quiet=True)
    figure = tmp_path / 'crops.png'
    analyse(rep, Namespace(block='proof', figure=str(figure)), pairs, networks)
    lines = rep.blocks['proof-analysis']
    exact = next(line for line in lines if line.startswith('| exact'))
    noisy_row = next(line for line in lines if line.startswith('| noisy'))
    assert '| 2 | inf ± ' in exact and '| 1.000 ± 0.000 |' in exact
    flat = [float(row.split('|')[7].split('±')[0]) for row in (exact, noisy_row)]
    assert flat[0] < 0.5 and flat[1] > 3  # noise in flat regions, grey levels
    img = cv2.imread(str(figure))
    # header + 2 photos x 2 windows, each 96 px crops doubled and framed; 4 columns: input, 2 networks, gt
    assert img.shape == (28 + 4 * 196, 4 * 196, 3)


def test_illumination_global_context_starts_at_zero_and_sees_the_whole_image():
    from deepspg_basicsr.archs.deepspg_arch import IlluminationEstimator

    torch.manual_seed(0)
    local, wide = IlluminationEstimator(8, global_context=False), IlluminationEstimator(8, global_context=True)
    wide.load_state_dict(dict(local.state_dict(), **{k: v for k, v in wide.state_dict().items() if 'global' in k}))
    x = torch.rand(1, 3, 40, 40) * 0.2
    far = x.clone()
    far[..., 30:, 30:] = 1.0  # a bright patch far from pixel (2, 2)
    with torch.no_grad():
        assert torch.equal(wide(x)[0], local(x)[0])  # zero-initialised: the same estimator
        assert torch.equal(local(far)[0][..., 2, 2], local(x)[0][..., 2, 2])  # 9-pixel receptive field
        wide.global_context.weight.normal_(0, 0.5)
        assert not torch.allclose(wide(far)[0][..., 2, 2], wide(x)[0][..., 2, 2])  # the image-wide mean reaches it


def test_exposure_head_starts_as_identity_then_scales_each_photo_and_channel():
    kwargs = dict(num_feat=8, illum_feat=8, num_blocks=[1, 1, 1], sem_channels=[18, 36, 72])
    torch.manual_seed(0)
    plain = DeepSPG(exposure_head=False, **kwargs).eval()
    torch.manual_seed(0)
    net = DeepSPG(exposure_head=True, exposure_source='decoder', **kwargs).eval()
    x = torch.rand(2, 3, 30, 22) * 0.2
    feats = [torch.rand(2, c, 8, 6) for c in (18, 36, 72)]
    with torch.no_grad():
        assert torch.equal(net(x, feats), plain(x, feats))  # zero-initialised last layer: no change
        net.exposure.fc2.bias.copy_(torch.log(torch.tensor([2.0, 1.0, 0.5])))
        out = net(x, feats)
        ref = plain(x, feats)
    # a constant log-gain multiplies each channel of the whole photo, exactly
    assert torch.allclose(out, ref * torch.tensor([2.0, 1.0, 0.5]).view(1, 3, 1, 1), rtol=1e-6, atol=1e-7)
    # the decoder source (checkpoints made before the encoder source): the gain is chosen per photo from the
    # pooled decoder features, which carry the semantics
    with torch.no_grad():
        net.exposure.fc2.weight.normal_(0, 0.5)
        gain = net(x, feats) / plain(x, feats)
        other = net(x, [f.flip(0) for f in feats]) / plain(x, [f.flip(0) for f in feats])
    assert torch.allclose(gain, gain[..., :1, :1].expand_as(gain), rtol=1e-4)  # one gain per photo and channel
    assert not torch.allclose(gain[0, :, 0, 0], gain[1, :, 0, 0])  # photos get their own gain
    assert not torch.allclose(gain, other)  # other semantic features, another gain
    # a checkpoint of the other layout names the option that loads it
    assert 'exposure_head: false' in net.checkpoint_hint(*_key_diff(net, plain))
    assert 'exposure_head: true' in plain.checkpoint_hint(*_key_diff(plain, net))


def test_exposure_head_from_the_encoder_never_reads_the_prior():
    kwargs = dict(num_feat=8, illum_feat=8, num_blocks=[1, 1, 1], sem_channels=[18, 36, 72])
    torch.manual_seed(0)
    plain = DeepSPG(exposure_head=False, **kwargs).eval()
    torch.manual_seed(0)
    enc_net = DeepSPG(**kwargs).eval()  # the default
    dec_net = DeepSPG(exposure_source='decoder', **kwargs).eval()
    x = torch.rand(2, 3, 30, 22) * 0.2
    feats = [torch.rand(2, c, 8, 6) for c in (18, 36, 72)]
    flipped = [f.flip(0) for f in feats]
    with torch.no_grad():
        enc_net.exposure.fc2.weight.normal_(0, 0.5)
        enc_net.exposure.fc1.weight[:, -3:] = 0  # the gain then reads the pooled features only
        params = {k: v for k, v in enc_net.state_dict().items() if k != 'exposure.from_encoder'}
        dec_net.load_state_dict(params)  # the same parameters; only the marker tells the sources apart
        gain = enc_net(x, feats) / plain(x, feats)
        gain_other = enc_net(x, flipped) / plain(x, flipped)
        pooled = enc_net.encode(x)['e2'].mean(dim=(2, 3))
        by_hand = enc_net.exposure.fc2(
            torch.nn.functional.leaky_relu(
                enc_net.exposure.fc1.weight[:, :-3] @ pooled.T + enc_net.exposure.fc1.bias[:, None], 0.2
            ).T
        ).exp()
        dec_gain = dec_net(x, feats) / plain(x, feats)
        dec_other = dec_net(x, flipped) / plain(x, flipped)
    assert torch.allclose(gain, gain_other, rtol=1e-5)  # other semantic features, the same gain
    assert torch.allclose(gain[..., 0, 0], by_hand, rtol=1e-4)  # the deepest encoder level's pooled features
    assert not torch.allclose(dec_gain, dec_other, rtol=1e-3)  # the decoder's features carry the semantics
    with pytest.raises(ValueError, match='network_g.exposure_source'):
        DeepSPG(exposure_source='prior', **kwargs)
    # a checkpoint of the other source names the option that loads it
    assert 'exposure_source: decoder' in enc_net.checkpoint_hint(*_key_diff(enc_net, dec_net))
    assert 'exposure_source: encoder' in dec_net.checkpoint_hint(*_key_diff(dec_net, enc_net))
    with pytest.raises(RuntimeError, match='from_encoder'):
        dec_net.load_state_dict(enc_net.state_dict())


def test_input_level_scales_each_image_to_the_level_and_tells_the_exposure_head_by_how_much():
    kwargs = dict(num_feat=8, illum_feat=8, num_blocks=[1, 1, 1], sem_channels=[18, 36, 72])
    torch.manual_seed(0)
    net = DeepSPG(input_level=0.08, **kwargs).eval()
    torch.manual_seed(0)
    plain = DeepSPG(**kwargs).eval()  # the default: the input as given
    x = torch.rand(2, 3, 30, 22) * 0.2
    x[1] *= 0.25  # the second photo darker
    feats = [torch.rand(2, c, 8, 6) for c in (18, 36, 72)]
    with torch.no_grad():
        # a new network is invariant to the input's exposure (the exposure head starts as the identity) ...
        assert torch.allclose(net(x, feats), net(x * 3.0, feats), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(plain(x, feats), plain(x * 3.0, feats), rtol=1e-3)
        # ... because it sees every image at mean 0.08: the same as the network without it given the scaled input
        params = {k: v for k, v in net.state_dict().items() if k in plain.state_dict()}
        params['exposure.fc1.weight'] = net.exposure.fc1.weight[:, :-1]
        plain.load_state_dict(params)
        scaled = x * (0.08 / x.mean(dim=(1, 2, 3), keepdim=True))
        assert torch.allclose(net(x, feats), plain(scaled, feats), rtol=1e-5, atol=1e-6)
        # the one number the scaling removes reaches the exposure head: log(mean / level) per image
        enc = net.encode(x)
        assert torch.allclose(enc['in_stats'][:, 0], torch.log(x.mean(dim=(1, 2, 3)) / 0.08))
        net.exposure.fc2.weight.normal_(0, 0.5)
        net.exposure.fc1.weight[:, -1].normal_(0, 1.0)
        assert not torch.allclose(net(x, feats), net(x * 3.0, feats), rtol=1e-3)
    assert 'input_level_value' not in plain.state_dict() and float(net.input_level_value) == pytest.approx(0.08)
    with pytest.raises(ValueError, match='network_g.input_level'):
        DeepSPG(input_level=0.0, **kwargs)
    with pytest.raises(ValueError, match='network_g.input_level'):
        DeepSPG(input_level=1.5, **kwargs)
    # a checkpoint of the other setting fails to load strictly, and the hint names the option
    torch.manual_seed(0)
    default = DeepSPG(**kwargs)
    assert 'input_level: null' in net.checkpoint_hint(*_key_diff(net, default))
    assert 'input_level:' in default.checkpoint_hint(*_key_diff(default, net))
    with pytest.raises(RuntimeError, match='input_level_value'):
        net.load_state_dict(default.state_dict())
    # the level is the checkpoint's: a network trained at 0.1 runs at 0.1 whatever the option says
    torch.manual_seed(1)
    other = DeepSPG(input_level=0.1, **kwargs).eval()
    net.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.equal(net(x, feats), other(x, feats))
        assert torch.allclose(net.encode(x)['in_stats'][:, 0], torch.log(x.mean(dim=(1, 2, 3)) / 0.1))
    with pytest.raises(ValueError, match=r'extra=1 needs \(B, 1\) statistics'):
        net.exposure(torch.rand(2, 32, 4, 4), x)  # the head cannot silently run without the input's level


def _key_diff(loading, saved):
    """(missing, unexpected) keys when ``saved``'s state dict is loaded into ``loading``."""
    have, given = set(loading.state_dict()), set(saved.state_dict())
    return sorted(have - given), sorted(given - have)


def _script(name):
    """The module of ``scripts/<name>.py`` (the scripts folder is not a package)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'scripts', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exposure_agreement_measures_stops_against_the_ground_truth():
    module = _script('exposure_agreement')
    gt = torch.full((1, 3, 16, 16), 0.2)  # 16 x 16: the decomposition's 8 x 8 blocks need a few
    gt[..., 0, 0] = 0.6
    mean = float((gt * 255).round().mean())
    pairs = [('a', None, gt), ('b', None, gt)]
    outputs = [np.full((16, 16, 3), 2 * mean), np.full((16, 16, 3), mean / 2)]  # twice and half as bright
    assert module.exposure_errors(outputs, pairs) == pytest.approx([1.0, -1.0])


def test_photo_difference_stats_against_a_hand_computation():
    module = _script('photo_differences')
    a = [[21.0, 25.0, 18.0, 30.0], [23.0, 25.0, 20.0, 28.0]]  # 2 seeds x 4 photos: photo means 22, 25, 19, 29
    b = [[20.0, 26.0, 19.0, 25.0]]  # differences +2, -1, 0, +4: mean 1.25
    res = module.photo_difference_stats(a, b, resolve=1.0)
    assert res['per_photo'] == pytest.approx([2.0, -1.0, 0.0, 4.0])
    std = math.sqrt((0.75**2 + 2.25**2 + 1.25**2 + 2.75**2) / 3)  # 2.2174
    assert res['mean'] == pytest.approx(1.25) and res['std'] == pytest.approx(std)
    assert res['sem'] == pytest.approx(std / 2)
    assert res['ci95'][1] - 1.25 == pytest.approx(3.182446 * std / 2, rel=1e-5)  # t(0.975, 3 dof)
    assert (res['better'], res['worse']) == (2, 1)
    assert res['photos_needed'] == math.ceil((2 * std / 1.0) ** 2) == 20  # 19.67
    with pytest.raises(ValueError, match='4 and 3 photos'):
        module.photo_difference_stats(a, [[1.0, 2.0, 3.0]])


@pytest.mark.slow
def test_saved_jobs_recorded_before_the_exposure_source_option_reload_with_the_decoder_source():
    from deepspg_basicsr.bench.proof import recorded_options

    kwargs = dict(num_feat=8, illum_feat=8, num_blocks=[1, 1, 1], sem_channels=[18, 36, 72])
    old = DeepSPG(exposure_source='decoder', **kwargs).state_dict()
    new = DeepSPG(**kwargs).state_dict()
    record = {'network_g': {'num_feat': 8}, 'train': {'total_iter': 3}}
    completed = recorded_options(record, old)
    assert (
        completed['network_g'] == {'num_feat': 8, 'exposure_source': 'decoder'}
        and completed['train'] == record['train']
    )
    assert record == {'network_g': {'num_feat': 8}, 'train': {'total_iter': 3}}  # the record itself is not changed
    DeepSPG(**dict(kwargs, **completed['network_g'])).load_state_dict(old)  # strict: the layout the file has
    assert recorded_options(record, new) is record  # the marker: the encoder source, the default
    named = {'network_g': {'exposure_source': 'encoder'}}
    assert recorded_options(named, old) is named  # a record that names the source is taken as it is
    plain = DeepSPG(exposure_head=False, **kwargs).state_dict()
    assert recorded_options(None, plain) is None  # no exposure head: nothing to complete


def test_resolved_network_completes_the_defaults_and_leaves_out_what_json_cannot_hold():
    from deepspg_basicsr.bench.proof import resolved_network

    from basicsr.utils.registry import ARCH_REGISTRY

    relu = torch.nn.ReLU()  # a default JSON cannot hold

    class _ProofRecordTestNet(torch.nn.Module):
        def __init__(self, width=4, sizes=(1, 2), act=relu, **kwargs):
            super().__init__()

    ARCH_REGISTRY.register(_ProofRecordTestNet)
    given = {'type': '_ProofRecordTestNet', 'width': 8, 'extra': 'kept'}
    assert resolved_network(given) == {'type': '_ProofRecordTestNet', 'width': 8, 'sizes': [1, 2], 'extra': 'kept'}
    assert given == {'type': '_ProofRecordTestNet', 'width': 8, 'extra': 'kept'}  # not changed


def test_photo_differences_reload_the_proof_networks_as_the_proof_scored_them(tmp_path):
    """Two proof jobs on the demo pairs (tiny network, 3 iterations), reloaded by the script: each seed's mean
    per-photo PSNR is the proof's own score of that job, and the mean difference the difference of the two."""
    import argparse
    import json

    from deepspg_basicsr.bench import cli, proof

    root = proof.ensure_demo_data(proof.DEMO_ROOT)
    work = tmp_path / 'work'
    common = ['--root', root, '--prior', 'demo', '--iters', '3', '--gt-size', '32']
    cli.run_section(
        'proof',
        [*common, '--threads', '1', '--out', str(tmp_path / 'p.md'), '--json', str(tmp_path / 'p.json'), '--no-levers']
        + ['--options', '{network_g: {num_feat: 8, illum_feat: 8}}', '--seeds', '0', '--work', str(work)]
        + ['--variants', 'no semantics', 'input (default)'],
    )
    module = _script('photo_differences')
    parser = argparse.ArgumentParser()
    proof.add_saved_network_arguments(parser)
    args = parser.parse_args(common)
    pairs = proof.test_pairs(root)
    a = module.photo_scores(f'a={work}:input (default)', args, pairs)
    b = module.photo_scores(f'b={work}:no semantics', args, pairs)
    scored = {v: json.loads((work / f'{v}_seed0.json').read_text())['test'] for v in ('input__default', 'no_semantics')}
    # float-level differences only: the proof scored each job in its own process, on its thread count
    assert a['psnr'].shape == (1, len(pairs))
    assert a['psnr'].mean() == pytest.approx(scored['input__default']['psnr'], abs=1e-4)
    assert b['ssim'].mean() == pytest.approx(scored['no_semantics']['ssim'], abs=1e-5)
    res = module.photo_difference_stats(a['psnr'], b['psnr'])
    assert res['mean'] == pytest.approx(scored['input__default']['psnr'] - scored['no_semantics']['psnr'], abs=1e-4)
    # each job records its network's full options, arch defaults included, and reloads from that record alone
    job = json.loads((work / 'input__default_seed0.json').read_text())
    defaults = {k: v.default for k, v in inspect.signature(DeepSPG.__init__).parameters.items() if k != 'self'}
    assert set(job['network']) == {'type', *defaults}
    assert job['network']['num_feat'] == 8 and job['network']['exposure_source'] == 'encoder'
    assert job['network']['num_blocks'] == list(defaults['num_blocks'])
    job['options'] = None  # the record's num_feat 8 alone: the default 16 would not load the file
    weights = str(work / 'input__default_seed0.pth')
    again = proof.network_outputs(job, weights, args, pairs)
    assert np.array_equal(
        again[0],
        proof.network_outputs(
            {**job, 'network': None, 'options': {'network_g': {'num_feat': 8, 'illum_feat': 8}}}, weights, args, pairs
        )[0],
    )
    with pytest.raises(RuntimeError, match='shape mismatches'):
        proof.network_outputs(dict(job, network=None), weights, args, pairs)
