"""Semantic guidance for any BasicSR network (issue 5): SEM wrapper, SKF losses and GAN, text guidance."""

import copy

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr.archs import DeepSPG, MultiLevelFusion, TextConditionedAttention
from deepspg_basicsr.losses.semantic_histogram_loss import class_weights, soft_class_histograms
from deepspg_basicsr.priors import CLIPPrior

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models import build_model
from llie_test_utils import LIGHT_SEM_CHANNELS, TINY_CLIP, train_opt

SRVGG_HOST = {'type': 'SRVGGNetCompact', 'num_feat': 8, 'num_conv': 3, 'upscale': 1, 'act_type': 'prelu'}
RRDB_HOST = {
    'type': 'RRDBNet',
    'num_in_ch': 3,
    'num_out_ch': 3,
    'scale': 1,
    'num_feat': 8,
    'num_block': 1,
    'num_grow_ch': 4,
}
WRAPPERS = {
    'srvgg': {'host': SRVGG_HOST, 'insert_after': ['body.3', 'body.5', 'body.7']},
    'rrdb': {'host': RRDB_HOST, 'insert_after': ['conv_body', 'conv_up1', 'conv_up2'], 'pad_multiple': 4},
}


def wrapper_opt(name, **kwargs):
    return dict(
        type='SemanticGuidedWrapper',
        sem_channels=LIGHT_SEM_CHANNELS,
        **copy.deepcopy(WRAPPERS[name]),
        **kwargs,
    )


def sem_feats(b=1, h=32, w=36, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, -(-h // s), -(-w // s), generator=g) for c, s in zip(LIGHT_SEM_CHANNELS, (4, 8, 16))]


# ---- SemanticGuidedWrapper ----------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(WRAPPERS))
def test_zero_init_wrapper_equals_host_exactly(name):
    torch.manual_seed(0)
    wrapper = build_network(wrapper_opt(name))
    host = build_network(WRAPPERS[name]['host'])
    host.load_state_dict(wrapper.host.state_dict())
    x = torch.rand(2, 3, 32, 36)
    with torch.no_grad():
        assert torch.equal(wrapper(x, sem_feats(2)), host(x))
    assert wrapper.channels == [8, 8, 8]


@pytest.mark.parametrize('name', sorted(WRAPPERS))
def test_wrapper_step_reaches_sem_and_changes_output(name):
    torch.manual_seed(0)
    wrapper = build_network(wrapper_opt(name))
    x, target, feats = torch.rand(1, 3, 30, 34), torch.rand(1, 3, 30, 34), sem_feats(1, 30, 34)
    with torch.no_grad():
        before = wrapper(x, feats)
    F.mse_loss(wrapper(x, feats), target).backward()
    grads = [p.grad for p in wrapper.sems.parameters()]
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    for sem in wrapper.sems:  # the zero-initialised output projections get gradients at once
        assert sem.attn.project_out.weight.grad.abs().sum() > 0
        assert sem.ffn.project_out.weight.grad.abs().sum() > 0
    torch.optim.Adam(wrapper.sems.parameters(), lr=1e-2).step()
    with torch.no_grad():
        after = wrapper(x, feats)
    assert after.shape == before.shape == x.shape  # padded to 4 and cropped back for RRDBNet
    assert not torch.equal(after, before)


def test_wrapper_loads_a_pretrained_host(tmp_path):
    torch.manual_seed(1)
    host = build_network(SRVGG_HOST)
    torch.save({'params': host.state_dict()}, tmp_path / 'host.pth')
    wrapper = build_network(wrapper_opt('srvgg', host_pretrained=str(tmp_path / 'host.pth')))
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert torch.equal(wrapper(x, sem_feats(1, 20, 24)), host(x))


def test_unknown_submodule_lists_valid_names():
    with pytest.raises(ValueError, match="no submodule named \\['conv_bdy'\\]") as err:
        build_network(dict(wrapper_opt('rrdb'), insert_after=['conv_bdy']))
    for valid in ('conv_first', 'body.0', 'conv_body', 'conv_up1', 'conv_hr'):
        assert valid in str(err.value)


def test_shared_submodule_and_bad_branches_are_refused():
    with pytest.raises(ValueError, match='called 3 times'):
        build_network(dict(wrapper_opt('rrdb'), insert_after=['lrelu']))
    with pytest.raises(ValueError, match='sem_branches'):
        build_network(dict(wrapper_opt('srvgg'), sem_branches=[0, 5, 1]))
    with pytest.raises(ValueError, match='needs sem_feats'):
        build_network(wrapper_opt('srvgg'))(torch.rand(1, 3, 16, 16))


def test_wrapper_copies_use_their_own_sems():
    torch.manual_seed(0)
    wrapper = build_network(wrapper_opt('srvgg', sem_branches=[2, 2, 0]))
    clone = copy.deepcopy(wrapper)
    for p in clone.sems.parameters():
        torch.nn.init.normal_(p)
    x, feats = torch.rand(1, 3, 20, 20), sem_feats(1, 20, 20)
    with torch.no_grad():
        before = wrapper(x, feats)
        assert not torch.equal(clone(x, feats), before)
        assert torch.equal(wrapper(x, feats), before)
    assert [s.sem_proj.in_channels for s in wrapper.sems] == [72, 72, 18]


# ---- SKF losses -------------------------------------------------------------------------------
def test_soft_histograms_match_numpy_for_sharp_edges():
    g = torch.Generator().manual_seed(0)
    # values k / 255 never lie on an interior edge j / 256: they are at least 1/255 of a bin away
    img = torch.randint(0, 256, (2, 3, 24, 20), generator=g).float() / 255
    labels = torch.randint(0, 4, (2, 24, 20), generator=g)
    hist, mass = soft_class_histograms(img, class_weights(labels, (24, 20), 4), bins=256, sharpness=1e4)
    for b in range(2):
        for k in range(4):
            sel = (labels[b] == k).numpy()
            assert mass[b, k] == sel.sum()
            for c in range(3):
                ref, _ = np.histogram(img[b, c].numpy()[sel], bins=256, range=(0, 1))
                np.testing.assert_allclose(hist[b, k, c].numpy(), ref / sel.sum(), atol=1e-6)

    # the loss is then the per-class L1 of these histograms, mean over channels, sum over classes
    pred = torch.randint(0, 256, (2, 3, 24, 20), generator=g).float() / 255
    loss = build_loss(dict(type='SemanticHistogramLoss', sharpness=1e4, reduction='none'))(pred, img, labels)
    expect = np.zeros(2)
    for b in range(2):
        for k in range(4):
            sel = (labels[b] == k).numpy()
            for c in range(3):
                hp, _ = np.histogram(pred[b, c].numpy()[sel], bins=256, range=(0, 1))
                ht, _ = np.histogram(img[b, c].numpy()[sel], bins=256, range=(0, 1))
                expect[b] += np.abs(hp - ht).sum() / sel.sum() / 3
    np.testing.assert_allclose(loss.numpy(), expect, rtol=1e-5)


def test_histogram_loss_is_differentiable_and_checks_options():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 3, 16, 16, generator=g, requires_grad=True)
    target = torch.rand(2, 3, 16, 16, generator=g)
    probs = torch.rand(2, 5, 8, 8, generator=g).softmax(1)  # soft, lower-resolution class map
    loss = build_loss(dict(type='SemanticHistogramLoss', loss_weight=0.5, bins=64))(pred, target, probs)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad != 0).float().mean() > 0.9
    with pytest.raises(ValueError, match='Unsupported reduction'):
        build_loss(dict(type='SemanticHistogramLoss', reduction='avg'))
    with pytest.raises(ValueError, match='Unsupported reduction'):
        build_loss(dict(type='SemanticAdversarialLoss', reduction='avg'))


def test_adversarial_loss_picks_the_lowest_scoring_region():
    loss = build_loss(dict(type='SemanticAdversarialLoss', loss_weight=0.1, min_region_fraction=0.1))
    seg = torch.zeros(1, 3, 8, 8)
    seg[:, 0, :, :4], seg[:, 1, :, 4:], seg[:, 2, 0, 0] = 1, 1, 1  # class 2: too small a region
    seg[:, 0, 0, 0] = 0
    pred = torch.zeros(1, 1, 8, 8)
    pred[..., :, 4:] = -1.0  # class 1 looks the most fake
    pred[..., 0, 0] = -5.0
    region = loss.select_region(pred, seg)
    assert torch.equal(region, seg[:, 1:2])
    g_loss = loss(pred, True, is_disc=False, pred_local=pred, region=region)
    d_loss = loss(pred, True, is_disc=True, pred_local=pred, region=region)
    assert torch.allclose(g_loss, 0.1 * d_loss)
    assert torch.allclose(d_loss, ((pred - 1) ** 2).mean() + 4.0)


def _gan_opt(tmp_path, network_g):
    opt = train_opt(
        model_type='SemanticGANModel',
        network_d={'type': 'SemanticPatchDiscriminator', 'num_classes': 150, 'num_feat': 8, 'num_layers': 2},
        path={'models': str(tmp_path), 'training_states': str(tmp_path)},
    )
    opt['network_g'] = network_g
    opt['train'] = {
        'optim_g': {'type': 'Adam', 'lr': 1e-3},
        'optim_d': {'type': 'Adam', 'lr': 1e-3},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
        'pixel_opt': {'type': 'SPGPixelLoss', 'loss_weight': 1.0},
        'histogram_opt': {'type': 'SemanticHistogramLoss', 'loss_weight': 0.1, 'bins': 64},
        'gan_opt': {'type': 'SemanticAdversarialLoss', 'loss_weight': 0.01},
    }
    return opt


def test_gan_step_updates_generator_and_discriminator(tmp_path):
    torch.manual_seed(0)
    model = build_model(_gan_opt(tmp_path, wrapper_opt('srvgg')))
    g0 = copy.deepcopy(model.net_g.state_dict())
    d0 = copy.deepcopy(model.net_d.state_dict())
    model.feed_data({'lq': torch.rand(1, 3, 32, 32) * 0.2, 'gt': torch.rand(1, 3, 32, 32)})
    model.optimize_parameters(1)
    assert {'l_pix', 'l_hist', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'} <= set(model.log_dict)
    assert all(np.isfinite(v) for v in model.log_dict.values())
    changed_g = [k for k, v in model.net_g.state_dict().items() if not torch.equal(v, g0[k])]
    changed_d = [k for k, v in model.net_d.state_dict().items() if not torch.equal(v, d0[k])]
    assert any(k.startswith('sems.') for k in changed_g) and any(k.startswith('host.') for k in changed_g)
    assert any(k.endswith('original') for k in changed_d)
    model.save(0, 1)
    assert (tmp_path / 'net_g_1.pth').is_file() and (tmp_path / 'net_d_1.pth').is_file()
    assert (tmp_path / '1.state').is_file()


def test_gan_generator_step_stops_on_a_collapsed_output(tmp_path):
    """The generator's step has the same collapse check as DeepSPGModel's: an output exactly 0 everywhere (finite
    losses) stops training before any weight changes."""
    from deepspg_basicsr.models import CollapsedOutputError

    torch.manual_seed(0)
    model = build_model(_gan_opt(tmp_path, wrapper_opt('srvgg')))
    batch = {'lq': torch.rand(1, 3, 32, 32) * 0.2, 'gt': torch.rand(1, 3, 32, 32)}
    model.feed_data(batch)
    model.optimize_parameters(1)  # healthy
    enhance = model.enhance
    model.enhance = lambda net, lq: enhance(net, lq) * 0  # a collapsed generator: black, the losses finite
    g0 = copy.deepcopy(model.net_g.state_dict())
    d0 = {k: v.detach().clone() for k, v in model.net_d.named_parameters()}  # (its spectral-norm buffers move)
    model.feed_data(batch)
    with pytest.raises(CollapsedOutputError, match='iter 2'):
        model.optimize_parameters(2)
    assert all(torch.equal(v, g0[k]) for k, v in model.net_g.state_dict().items())
    assert all(torch.equal(v, d0[k]) for k, v in model.net_d.named_parameters())


def _same_state(a, b, where=''):
    """Assert two (nested) state dicts hold equal values: tensors equal, numbers equal."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _same_state(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same_state(x, y, f'{where}[{i}]')
    elif torch.is_tensor(a):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_gan_resume_restores_the_discriminator_and_its_optimiser(tmp_path):
    """Resumed as BasicSR's train.py does (``load_resume_state``, which points
    ``path.pretrain_network_d`` at ``net_d_<iter>.pth``; ``build_model``; ``resume_training``): the
    discriminator's weights and its Adam state equal the saved run's, and the next iteration gives
    the same losses and weights as the run that was not interrupted.

    Fails if ``optimizer_d`` is not among the saved optimisers (``self.optimizers.append(self.optimizer_d)``
    removed from ``SemanticGANModel.setup_optimizers``: tried, its Adam state starts afresh)."""
    from deepspg_basicsr.utils.resume import load_resume_state

    opt = _gan_opt(tmp_path, wrapper_opt('srvgg'))
    opt['auto_resume'] = False
    torch.manual_seed(0)
    model = build_model(copy.deepcopy(opt))
    g = torch.Generator().manual_seed(1)
    batches = [{'lq': torch.rand(1, 3, 32, 32, generator=g) * 0.2, 'gt': torch.rand(1, 3, 32, 32, generator=g)}]
    batches.append({'lq': batches[0]['lq'].flip(-1), 'gt': batches[0]['gt'].flip(-1)})
    for it, batch in enumerate(batches, 1):
        model.feed_data(batch)
        model.optimize_parameters(it)
    model.save(0, 2)

    opt['path']['resume_state'] = str(tmp_path / '2.state')
    state = load_resume_state(opt)
    assert opt['path']['pretrain_network_d'] == str(tmp_path / 'net_d_2.pth')
    torch.manual_seed(1)  # other initial weights: everything must come from the files
    resumed = build_model(opt)
    resumed.resume_training(state)
    _same_state(resumed.net_d.state_dict(), model.net_d.state_dict(), 'net_d')
    _same_state(resumed.optimizer_d.state_dict(), model.optimizer_d.state_dict(), 'optimizer_d')
    assert resumed.optimizer_d.state_dict()['state'], 'the Adam state of two steps was restored'

    for m in (model, resumed):
        m.feed_data(batches[0])
        m.optimize_parameters(3)
    for key, value in model.log_dict.items():
        assert resumed.log_dict[key] == pytest.approx(value, rel=1e-6), key
    for key, value in model.net_d.state_dict().items():
        torch.testing.assert_close(resumed.net_d.state_dict()[key], value, rtol=0, atol=1e-6)


# ---- text guidance ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_clip():
    torch.manual_seed(0)
    return CLIPPrior(TINY_CLIP, pretrained=None)


def test_text_attention_starts_as_identity_and_depends_on_the_prompt(tiny_clip):
    torch.manual_seed(0)
    tcm = TextConditionedAttention(8, 64, num_heads=2)
    x = torch.randn(2, 8, 6, 7)
    t1, m1 = tiny_clip.token_embeddings(['a bright photo'])
    t2, m2 = tiny_clip.token_embeddings(['a dark, noisy night scene with street lamps'])
    assert torch.equal(tcm(x, t1, m1), x)
    torch.nn.init.normal_(tcm.project_out.weight)
    out1, out2 = tcm(x, t1, m1), tcm(x, t2, m2)
    assert not torch.allclose(out1, out2)
    # padding tokens are masked out: their content cannot change the output
    t1_noise = t1.clone()
    t1_noise[~m1] = torch.randn_like(t1_noise[~m1])
    assert torch.allclose(tcm(x, t1_noise, m1), out1, atol=1e-6)


def test_multi_level_fusion_is_identity_at_start():
    fusion = MultiLevelFusion([8, 16, 32], 8)
    feats = [torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)]
    assert torch.equal(fusion(feats), feats[0])


def test_deepspg_text_guidance_forward_backward_and_off_by_default(tiny_clip):
    kwargs = {'num_feat': 8, 'num_blocks': [1, 1, 1], 'illum_feat': 8, 'sem_channels': LIGHT_SEM_CHANNELS}
    torch.manual_seed(0)
    plain = DeepSPG(**kwargs)
    net = DeepSPG(**kwargs, text_guidance=True, text_dim=64)
    assert not any(k.startswith(('tcms', 'fusion')) for k in plain.state_dict())
    assert sum(p.numel() for p in DeepSPG().parameters()) == sum(
        p.numel() for p in DeepSPG(text_guidance=False).parameters()
    )
    missing, unexpected = net.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(('tcms', 'fusion')) for k in missing)
    tokens, mask = tiny_clip.token_embeddings(['a well-lit photo'])
    x, feats = torch.rand(2, 3, 30, 34), sem_feats(2, 30, 34)
    with torch.no_grad():
        assert torch.equal(net(x, feats, text_feats=tokens, text_mask=mask), plain(x, feats))
    with pytest.raises(ValueError, match='text_feats'):
        net(x, feats)
    out = net(x, feats, text_feats=tokens, text_mask=mask)
    out.mean().backward()
    assert net.tcms[0].project_out.weight.grad.abs().sum() > 0
    assert net.fusion.project_out.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_model_feeds_cached_prompt_tokens(tmp_path):
    network_g = {'text_guidance': True, 'text_dim': 64, 'c2f': False}
    opt = train_opt(network_g=network_g, prior={'guidance_prompt': 'a bright, clear photo'})
    for key in ('semantic_opt', 'clip_opt'):
        opt['train'].pop(key)
    torch.manual_seed(0)
    model = build_model(opt)
    assert model.text_tokens.shape[:2] == model.text_mask.shape and bool(model.text_mask.all())
    model.feed_data({'lq': torch.rand(1, 3, 24, 24) * 0.2, 'gt': torch.rand(1, 3, 24, 24)})
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_pix', 'l_edge'}
    assert model.net_g.tcms[0].project_out.weight.abs().sum() > 0
    with pytest.raises(ValueError, match='text_dim'):
        build_model(train_opt(network_g={'text_guidance': True, 'text_dim': 32}))


def test_semantic_guided_model_with_a_wrapped_host():
    opt = train_opt(model_type='SemanticGuidedModel')
    opt['network_g'] = wrapper_opt('rrdb')
    opt['train'] = {
        'optim_g': {'type': 'Adam', 'lr': 1e-3},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
        'pixel_opt': {'type': 'SPGPixelLoss', 'loss_weight': 1.0},
        'histogram_opt': {'type': 'SemanticHistogramLoss', 'loss_weight': 0.1, 'bins': 32},
        'seg_map': {'source': 'lq', 'soft': True},
    }
    torch.manual_seed(0)
    model = build_model(opt)
    model.feed_data({'lq': torch.rand(1, 3, 27, 30) * 0.2, 'gt': torch.rand(1, 3, 27, 30)})
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_pix', 'l_hist'}
    assert model.seg_map.shape == (1, 150, 27, 30)
    model.test()
    assert model.output.shape == (1, 3, 27, 30)
