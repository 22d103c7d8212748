"""``prior.source``: what the segmentation prior sees for the SEM features in training."""

from deepspg_basicsr.utils.options_check import find_option_problems

import pytest
import torch
from basicsr.models import build_model
from llie_test_utils import train_opt

PIXEL_ONLY = {'edge_opt': None, 'semantic_opt': None, 'clip_opt': None}


def _model(source=None, **overrides):
    prior = dict(train_opt()['prior'], **({'source': source} if source else {}))
    return build_model(train_opt(prior=prior, train=PIXEL_ONLY, **overrides))


def _batch(b=3, size=32):
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(b, 3, size, size, generator=g)
    return {'lq': gt * 0.15, 'gt': gt}


def _prior_inputs(model, fn):
    """The images the segmentation prior is run on while ``fn()`` runs."""
    seen = []
    hook = model.seg_prior.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    try:
        fn()
    finally:
        hook.remove()
    return seen


@pytest.mark.parametrize(
    'source, expected',
    [('gt', lambda b: b['gt']), ('shuffled', lambda b: torch.roll(b['gt'], 1, dims=0))],
    ids=['gt', 'shuffled'],
)
def test_training_step_feeds_sem_the_chosen_images_once(source, expected):
    torch.manual_seed(0)
    model = _model(source)
    batch = _batch()
    model.feed_data(batch)
    with torch.no_grad():  # the enhancer run by hand on those features, before the step changes it
        by_hand = model.net_g(model.lq, model.sem_features(expected(batch)))
    seen = _prior_inputs(model, lambda: model.optimize_parameters(1))
    # one prior pass: the chosen images; no C2F pass on the coarse result (the source replaces both)
    assert len(seen) == 1
    assert torch.equal(seen[0], expected(batch))
    assert torch.allclose(model.output, by_hand, atol=1e-6)


def test_input_source_is_the_default_path():
    torch.manual_seed(0)
    model = _model()
    batch = _batch()
    model.feed_data(batch)
    seen = _prior_inputs(model, lambda: model.optimize_parameters(1))
    assert len(seen) == 2  # the input, then the C2F pass on the coarse result
    assert torch.equal(seen[0], batch['lq'])
    assert model.source_features() is None


def test_validation_runs_the_prior_on_the_input_whatever_the_source():
    model = _model('gt')
    batch = _batch(b=1)
    model.feed_data(batch)
    seen = _prior_inputs(model, model.test)
    assert torch.equal(seen[0], batch['lq'])


def test_shuffled_needs_two_images_and_says_which_option():
    model = _model('shuffled')
    model.feed_data(_batch(b=1))
    with pytest.raises(ValueError, match='batch_size_per_gpu'):
        model.optimize_parameters(1)


def test_oracle_needs_the_ground_truth():
    model = _model('gt')
    model.feed_data({'lq': torch.rand(2, 3, 32, 32)})
    model.gt = None
    with pytest.raises(ValueError, match='ground truth'):
        model.source_features()


def test_bad_values_are_clear_errors_naming_the_option():
    with pytest.raises(ValueError, match=r"prior.source must be one of \['input', 'gt', 'shuffled'\], got 'oracle'"):
        _model('oracle')
    with pytest.raises(ValueError, match='network_g.use_semantics'):
        _model('gt', network_g={'use_semantics': False})
    opt = train_opt(prior={'source': 'ground_truth'})
    problems = find_option_problems(opt, is_train=False)
    assert any('`prior.source`' in p and 'ground_truth' in p for p in problems), problems
    assert not any('prior.source' in p for p in find_option_problems(train_opt(prior={'source': 'gt'}), False))
