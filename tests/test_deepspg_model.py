"""DeepSPGModel: one optimisation step per ablation, saving and loading."""

import pytest
import torch
from basicsr.models import build_model
from llie_test_utils import train_opt

ABLATIONS = {
    'full': {},
    'no_image_semantics': {'network_g': {'use_semantics': False}},
    'no_c2f': {'network_g': {'c2f': False}},
    'no_text_semantics': {'train': {'clip_opt': None}},
    'pixel_only': {'train': {'edge_opt': None, 'semantic_opt': None, 'clip_opt': None}},
    'no_edge': {'train': {'edge_opt': {'type': 'SPGEdgeLoss', 'loss_weight': 0}}},
    'no_semantic_loss': {'train': {'semantic_opt': None}},
}

EXPECTED_LOGS = {
    'full': {'l_pix', 'l_edge', 'l_sem', 'l_clip'},
    'no_image_semantics': {'l_pix', 'l_edge', 'l_sem', 'l_clip'},
    'no_c2f': {'l_pix', 'l_edge', 'l_sem', 'l_clip'},
    'no_text_semantics': {'l_pix', 'l_edge', 'l_sem'},
    'pixel_only': {'l_pix'},
    'no_edge': {'l_pix', 'l_sem', 'l_clip'},
    'no_semantic_loss': {'l_pix', 'l_edge', 'l_clip'},
}


def _batch(b=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, 3, size, size, generator=g)
    return {'lq': gt * 0.15, 'gt': gt}


@pytest.mark.parametrize('name', sorted(ABLATIONS))
def test_one_step_per_ablation(name):
    torch.manual_seed(0)
    model = build_model(train_opt(**ABLATIONS[name]))
    net = model.net_g
    before = {k: v.clone() for k, v in net.state_dict().items()}
    seg_before = {k: v.clone() for k, v in model.seg_prior.state_dict().items()} if model.seg_prior else {}
    model.feed_data(_batch())
    model.optimize_parameters(1)
    logs = model.get_current_log()
    assert set(logs) == EXPECTED_LOGS[name]
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, 'no parameter changed'
    for k, v in seg_before.items():
        assert torch.equal(model.seg_prior.state_dict()[k], v), f'prior changed: {k}'
    has_seg_input = name != 'no_image_semantics'
    assert hasattr(net, 'sems') == has_seg_input


def test_no_prior_built_when_nothing_needs_it():
    model = build_model(train_opt(network_g={'use_semantics': False}, train={'semantic_opt': None, 'clip_opt': None}))
    assert model.seg_prior is None and model.clip_prior is None


def test_gradients_reach_every_enhancer_parameter_and_no_prior_parameter():
    torch.manual_seed(0)
    model = build_model(train_opt())
    with torch.no_grad():  # the exposure head's zero last layer passes no gradient to its first until a step moves it
        model.net_g.exposure.fc2.weight.normal_(0, 0.01)
    model.feed_data(_batch())
    model.optimizer_g.zero_grad()
    output = model.enhance(model.net_g, model.lq)
    l_total, _ = model.compute_losses(output, model.gt)
    l_total.backward()
    missing = [n for n, p in model.net_g.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    assert all(p.grad is None for p in model.seg_prior.parameters())
    assert all(p.grad is None for p in model.clip_prior.parameters())


def test_loss_weights_scale_logged_losses():
    torch.manual_seed(0)
    logs = []
    for w in (1.0, 3.0):
        torch.manual_seed(0)
        model = build_model(train_opt(train={'edge_opt': {'type': 'SPGEdgeLoss', 'loss_weight': w}}))
        model.feed_data(_batch())
        model.optimize_parameters(1)
        logs.append(model.get_current_log()['l_edge'])
    assert logs[1] == pytest.approx(3 * logs[0], rel=1e-4)


def test_save_load_identical_outputs(tmp_path):
    torch.manual_seed(0)
    opt = train_opt(path={'models': str(tmp_path), 'training_states': str(tmp_path)}, train={'ema_decay': 0.9})
    model = build_model(opt)
    model.feed_data(_batch())
    model.optimize_parameters(1)
    model.save(epoch=0, current_iter=1)
    saved = torch.load(tmp_path / 'net_g_1.pth', weights_only=True)
    assert set(saved) == {'params', 'params_ema'}
    # only the enhancer is saved: no prior weights in the file
    assert not any(k.startswith(('backbone.', 'decode_head.', 'model.')) for k in saved['params'])
    assert (tmp_path / '1.state').is_file()

    test_opt = train_opt(
        is_train=False, path={'pretrain_network_g': str(tmp_path / 'net_g_1.pth'), 'param_key_g': 'params_ema'}
    )
    loaded = build_model(test_opt)
    # the priors are not part of the enhancer's checkpoint: they come from their own files, or
    # (here) from a fixed seed, so both models rebuild the same random prior
    for a, b in zip(model.seg_prior.state_dict().values(), loaded.seg_prior.state_dict().values()):
        assert torch.equal(a, b)
    x = {'lq': torch.rand(1, 3, 45, 51)}
    model.feed_data(x)
    model.test()
    loaded.feed_data(x)
    loaded.test()
    assert torch.equal(model.output, loaded.output)
    assert model.output.min() >= 0 and model.output.max() <= 1


def test_non_finite_loss_stops_with_message():
    from deepspg_basicsr.models import NonFiniteLossError

    model = build_model(train_opt(train={'semantic_opt': None, 'clip_opt': None}))
    batch = _batch()
    batch['gt'][0, 0, 0, 0] = float('nan')
    model.feed_data(batch)
    with pytest.raises(NonFiniteLossError, match='iter 7'):
        model.optimize_parameters(7)


def test_a_collapsed_output_stops_training_before_the_step():
    """A gain that underflows (as the exposure head's did on blown-up features) gives a black output and a finite
    loss: training stops with an error naming the remedy, and no step is taken."""
    from deepspg_basicsr.models import CollapsedOutputError, NonFiniteLossError

    model = build_model(train_opt(train={'semantic_opt': None, 'clip_opt': None}))
    net = model.get_bare_model(model.net_g)
    assert net.exposure is not None
    model.feed_data(_batch())
    model.optimize_parameters(1)  # a healthy step passes
    with torch.no_grad():
        net.exposure.fc2.bias.fill_(-1e5)  # exp(-1e5) == 0: every output pixel exactly 0
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model.feed_data(_batch())
    with pytest.raises(CollapsedOutputError, match='iter 9.*grad_clip_norm') as err:
        model.optimize_parameters(9)
    assert isinstance(err.value, NonFiniteLossError)  # the launcher's clean stop (status 3) handles it too
    assert torch.isfinite(
        model.compute_losses(torch.zeros_like(model.gt), model.gt)[0]
    )  # the loss check alone misses it
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # no step taken


def test_sem_channel_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match='sem_channels'):
        build_model(train_opt(network_g={'sem_channels': [48, 96, 192]}))


def test_any_torch_optimizer_by_name_and_clear_error_otherwise():
    model = build_model(
        train_opt(
            network_g={'use_semantics': False},
            train={
                'semantic_opt': None,
                'clip_opt': None,
                'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 0.01},
            },
        )
    )
    assert type(model.optimizer_g).__name__ == 'AdamW'
    assert model.optimizer_g.param_groups[0]['weight_decay'] == 0.01
    with pytest.raises(ValueError, match='Adamz'):
        build_model(train_opt(train={'optim_g': {'type': 'Adamz', 'lr': 1e-3}}))
