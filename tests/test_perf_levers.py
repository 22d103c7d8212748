"""Speed levers (``perf:`` options, C2F reuse, cached text, seg_scale) change no result beyond their
stated tolerance. Light prior (HRNet-W18-small) and tiny CLIP, random weights."""

import copy
import math

from deepspg_basicsr.archs.deepspg_arch import DeepSPG
from deepspg_basicsr.utils.perf import parse_perf_options

import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model
from llie_test_utils import train_opt

#: PSNR tolerance of ``perf.amp: bf16`` (docs/BENCHMARKS.md, deepspg_basicsr/utils/perf.py).
BF16_PSNR_TOL_DB = 0.1
#: Minimum PSNR between bf16 and fp32 outputs.
BF16_AGREEMENT_DB = 50.0

TEST_NET = {'num_feat': 16, 'num_blocks': [1, 1, 1], 'illum_feat': 16}


def _pair(size=64, seed=0):
    """A small synthetic low-light pair: smooth colour structure plus texture, lq = 0.15 * gt + noise."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(size, size), mode='bicubic', align_corners=False)
    gt = (0.8 * smooth + 0.2 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)
    lq = (0.15 * gt + 0.005 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)
    return lq, gt


def _psnr(a, b):
    return 10 * math.log10(1 / F.mse_loss(a.clamp(0, 1), b.clamp(0, 1)).item())


def _model(is_train=False, **sections):
    opt = train_opt(is_train=is_train, network_g=TEST_NET, **sections)
    torch.manual_seed(0)
    return build_model(opt)


@pytest.fixture(scope='module')
def model():
    return _model()


def _with_prior(model, **prior):
    """A shallow copy of ``model`` (same networks) whose ``prior`` options are updated."""
    other = copy.copy(model)
    other.opt = copy.deepcopy(model.opt)
    other.opt['prior'].update(prior)
    return other


def _infer(model, x):
    with torch.inference_mode():
        return model.enhance(model.net_g, x)


# ---- channels_last -----------------------------------------------------------------------------------
def test_channels_last_enhancer_matches_fp32():
    torch.manual_seed(0)
    net = DeepSPG(sem_channels=[18, 36, 72]).eval()
    x = torch.rand(1, 3, 45, 62)
    feats = [torch.rand(1, c, -(-45 // s), -(-62 // s)) for c, s in zip((18, 36, 72), (4, 8, 16))]
    with torch.no_grad():
        ref = net(x, feats)
        net.to(memory_format=torch.channels_last)
        out = net(x.contiguous(memory_format=torch.channels_last), feats)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1e-5


def test_channels_last_prior_matches_fp32(model):
    x = torch.rand(1, 3, 64, 96)
    prior = copy.deepcopy(model.seg_prior)
    with torch.no_grad():
        ref = prior(x)
        prior.to(memory_format=torch.channels_last)
        out = prior(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(out['feats'] + [out['logits']], ref['feats'] + [ref['logits']]):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max().item())


def test_channels_last_option_matches_default(model):
    lq, _ = _pair()
    cl_model = _model(perf={'channels_last': True})
    cl_model.net_g.load_state_dict(model.net_g.state_dict())
    assert cl_model.net_g.embed.weight.is_contiguous(memory_format=torch.channels_last)
    assert (_infer(cl_model, lq) - _infer(model, lq)).abs().max() <= 1e-5


def test_rounding_only_defaults_match_the_plain_pipeline(model):
    # default perf (prior BatchNorm folded, channels-last prior and inference input on the CPU)
    # against everything off: the same output up to float rounding, in NCHW
    lq, _ = _pair(size=61)
    plain = _model(perf={'channels_last': False, 'fold_prior_bn': False})
    plain.net_g.load_state_dict(model.net_g.state_dict())
    bns = [m for m in model.seg_prior.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not bns and any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.seg_prior.backbone.modules())
    assert model.seg_prior.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.net_g.embed.weight.is_contiguous(memory_format=torch.channels_last)  # training layout kept
    out, ref = _infer(model, lq), _infer(plain, lq)
    assert out.is_contiguous() and out.shape == ref.shape
    assert 0 < (out - ref).abs().max() <= 1e-5  # not bit-identical: the levers did run
    with torch.inference_mode():
        feats, ref_feats = model.sem_features(lq), plain.sem_features(lq)
    for a, b in zip(feats, ref_feats):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, float(b.abs().max()))


# ---- mixed precision ------------------------------------------------------------------------------
def test_bf16_inference_within_psnr_tolerance(model):
    lq, gt = _pair()
    bf16 = _model(perf={'amp': 'bf16'})
    bf16.net_g.load_state_dict(model.net_g.state_dict())
    ref, out = _infer(model, lq), _infer(bf16, lq)
    assert out.dtype == torch.float32
    assert abs(_psnr(out, gt) - _psnr(ref, gt)) <= BF16_PSNR_TOL_DB
    assert _psnr(out, ref) >= BF16_AGREEMENT_DB


def test_bf16_training_step_is_finite_and_close():
    """Each logged loss within 1 % of float32's, however small (l_sem is about 5e-6; measured: at
    most 0.3 % apart, l_sem).

    Fails if the KL loss takes the prior's bf16 logits as they are (``.float()`` dropped in
    ``SemanticKLLoss.forward``: tried, l_sem 2.5e-5 instead of 4.6e-6)."""
    lq, gt = _pair(size=32, seed=1)
    losses = []
    for amp in ('none', 'bf16'):
        m = _model(is_train=True, perf={'amp': amp})
        m.feed_data({'lq': lq, 'gt': gt})
        m.optimize_parameters(1)
        losses.append(m.get_current_log())
        assert m.grad_scaler is None  # bf16 needs no gradient scaler
    assert set(losses[0]) == set(losses[1]) == {'l_pix', 'l_edge', 'l_sem', 'l_clip'}
    for key, ref in losses[0].items():
        assert math.isfinite(losses[1][key])
        assert losses[1][key] == pytest.approx(ref, rel=0.01, abs=0), key


# ---- no graph where none is needed ----------------------------------------------------------------
def test_no_grad_prior_features_equal_grad_enabled(model):
    x = torch.rand(2, 3, 48, 64)
    feats = model.sem_features(x)
    assert not any(f.requires_grad for f in feats)
    xg = x.clone().requires_grad_(True)
    with_grad = model.seg_prior(xg, return_logits=False)['feats']
    assert with_grad[0].requires_grad
    for a, b in zip(feats, [with_grad[i] for i in model.seg_branches]):
        assert torch.equal(a, b.detach())


def test_coarse_pass_without_graph_gives_identical_output_and_gradients(model):
    torch.manual_seed(0)
    net = DeepSPG(num_feat=8, num_blocks=[1, 1, 1], illum_feat=8, sem_channels=[18, 36, 72])
    x = torch.rand(2, 3, 32, 40)
    feats = model.sem_features(x)
    results = []
    for coarse_grad in (True, False):
        net.zero_grad()
        out = net(x, feats, prior=model.c2f_features, coarse_grad=coarse_grad)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_c2f_reuses_the_encoder_and_equals_two_full_passes(model):
    net = model.net_g.eval()
    x = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        feats = model.sem_features(x)
        coarse = net.enhance(x, feats)['out']
        two_passes = net.enhance(x, model.c2f_features(coarse.clamp(0, 1)))['out']
        calls = []
        hook = net.illumination.register_forward_hook(lambda *a: calls.append(1))
        out = net(x, feats, prior=model.c2f_features)
        hook.remove()
    assert torch.equal(out, two_passes)
    assert len(calls) == 1


def test_inference_mode_equals_no_grad(model):
    lq, _ = _pair(seed=2)
    with torch.no_grad():
        ref = model.enhance(model.net_g, lq)
    assert torch.equal(_infer(model, lq), ref)


# ---- cached text embeddings -----------------------------------------------------------------------
def test_cached_text_embeddings_equal_re_encoded():
    m = _model(is_train=True)
    clip = m.clip_prior
    cached = clip.text_embeddings(clip.prompts)
    assert cached is clip.text_features
    assert torch.equal(cached, clip.encode_text(clip.prompts))


# ---- prior resolution -----------------------------------------------------------------------------
def test_seg_scale_one_is_identical_to_default(model):
    lq, _ = _pair(seed=3)
    assert 'seg_scale' not in model.opt['prior']
    scaled = _with_prior(model, seg_scale=1.0, c2f_seg_scale=1.0)
    assert torch.equal(_infer(scaled, lq), _infer(model, lq))
    assert all(torch.equal(a, b) for a, b in zip(scaled.sem_features(lq), model.sem_features(lq)))


def test_c2f_seg_scale_defaults_to_seg_scale_and_changes_only_the_c2f_pass(model):
    x = torch.rand(1, 3, 64, 64)
    half = _with_prior(model, seg_scale=0.5)
    assert all(torch.equal(a, b) for a, b in zip(half.c2f_features(x), model.sem_features(x, 0.5)))
    c2f_half = _with_prior(model, c2f_seg_scale=0.5)
    assert all(torch.equal(a, b) for a, b in zip(c2f_half.sem_features(x), model.sem_features(x)))
    assert all(torch.equal(a, b) for a, b in zip(c2f_half.c2f_features(x), model.sem_features(x, 0.5)))
    reduced = model.sem_features(x, 0.5)
    assert reduced[0].shape[-1] == model.sem_features(x)[0].shape[-1] // 2


# ---- options --------------------------------------------------------------------------------------
def test_perf_options_are_validated_and_not_mutated():
    opt = {'amp': 'BF16', 'channels_last': ['enhancer']}
    parsed = parse_perf_options(opt)
    assert opt == {'amp': 'BF16', 'channels_last': ['enhancer']}
    assert parsed == {'amp': 'bf16', 'channels_last': ['enhancer'], 'compile': None, 'fold_prior_bn': True}
    # the rounding-only levers are the defaults: channels-last prior + inference input on the CPU only
    defaults = {'amp': 'none', 'channels_last': ['prior', 'inference'], 'compile': None, 'fold_prior_bn': True}
    assert parse_perf_options(None) == defaults
    assert parse_perf_options(None, 'cuda')['channels_last'] == []
    assert parse_perf_options({'channels_last': False})['channels_last'] == []
    assert parse_perf_options({'channels_last': True})['channels_last'] == ['enhancer', 'prior']
    with pytest.raises(ValueError, match='fold_prior_bn'):
        parse_perf_options({'fold_prior_bn': 'yes'})
    with pytest.raises(ValueError, match='unknown perf option'):
        parse_perf_options({'amp_dtype': 'bf16'})
    with pytest.raises(ValueError, match='fp16 needs CUDA'):
        parse_perf_options({'amp': 'fp16'}, 'cpu')
    with pytest.raises(ValueError, match='channels_last'):
        parse_perf_options({'channels_last': ['decoder']})


def test_compile_option_runs_a_compiled_forward_with_the_same_output_and_keys(model):
    """``perf.compile`` with a recording backend: TorchDynamo captures the enhancer's graphs and the
    model's inference runs them (the captured FX graphs, eagerly: inductor works here, but took 20 s
    for a one-line function on the 2-core machine), with the eager output; state-dict keys unchanged.

    Fails if ``compile_module`` does not compile (its ``module.compile`` call removed: tried, no
    graph captured or run)."""
    captured, runs = [], []

    def backend(gm, example_inputs):
        captured.append(gm)
        return lambda *args: runs.append(1) or gm.forward(*args)

    torch._dynamo.reset()
    try:
        compiled = _model(perf={'compile': {'backend': backend}})
        assert list(compiled.net_g.state_dict()) == list(model.net_g.state_dict())
        compiled.net_g.load_state_dict(model.net_g.state_dict())
        lq, _ = _pair(size=32)
        out, ref = _infer(compiled, lq), _infer(model, lq)
    finally:
        torch._dynamo.reset()
    assert captured and len(runs) >= len(captured)
    assert any(n.op == 'call_module' or n.op == 'call_function' for gm in captured for n in gm.graph.nodes)
    assert out.shape == ref.shape and float((out - ref).abs().max()) <= 1e-5


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('amp', ['fp16', 'bf16'])
def test_cuda_amp_training_step(amp):
    if amp == 'bf16' and not torch.cuda.is_bf16_supported():
        pytest.skip('no bf16 on this GPU')
    lq, gt = _pair()
    m = build_model(train_opt(is_train=True, num_gpu=1, network_g=TEST_NET, perf={'amp': amp}))
    assert (m.grad_scaler is not None) == (amp == 'fp16')
    m.feed_data({'lq': lq, 'gt': gt})
    m.optimize_parameters(1)
    assert all(math.isfinite(v) for v in m.get_current_log().values())
