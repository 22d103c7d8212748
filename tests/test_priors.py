"""The frozen priors: real architectures, real loaders, weights the tests make themselves."""

import copy
import os

from deepspg_basicsr.priors.clip_prior import CLIPPrior
from deepspg_basicsr.priors.segmentation_prior import (
    DEFAULT_SEG_CONFIG,
    SegmentationPrior,
    _sync_bn_to_bn,
    resolve_mmseg_config,
)
from deepspg_basicsr.utils.checkpoint import CheckpointError

import pytest
import torch
from llie_test_utils import LIGHT_SEG, TINY_CLIP, train_opt


@pytest.fixture(scope='module')
def hrnet_w48():
    torch.manual_seed(0)
    return SegmentationPrior(DEFAULT_SEG_CONFIG)


def _randomise_bn_stats(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def _build_mmseg_encoder_decoder(config):
    """The model exactly as MMSegmentation builds it (EncoderDecoder), SyncBN -> BN."""
    import mmseg.models  # noqa: F401
    from mmengine.config import Config
    from mmseg.registry import MODELS

    cfg = _sync_bn_to_bn(Config.fromfile(resolve_mmseg_config(config)).model.to_dict())
    cfg.pop('pretrained', None)
    cfg.pop('data_preprocessor', None)  # normalisation is compared explicitly below
    return MODELS.build(cfg).eval()


def test_hrnet_w48_size_and_feature_shapes(hrnet_w48):
    n_backbone = sum(p.numel() for p in hrnet_w48.backbone.parameters())
    n_total = sum(p.numel() for p in hrnet_w48.parameters())
    assert round(n_backbone / 1e6, 1) == 65.3
    assert round(n_total / 1e6, 1) == 66.0
    assert hrnet_w48.out_channels == [48, 96, 192, 384]
    assert hrnet_w48.num_classes == 150
    with torch.no_grad():
        out = hrnet_w48(torch.rand(1, 3, 400, 600))
    shapes = [tuple(f.shape) for f in out['feats']]
    assert shapes == [(1, 48, 100, 150), (1, 96, 50, 75), (1, 192, 25, 38), (1, 384, 13, 19)]
    assert tuple(out['logits'].shape) == (1, 150, 100, 150)


def test_prior_is_frozen_and_stays_in_eval(hrnet_w48):
    assert sum(p.numel() for p in hrnet_w48.parameters() if p.requires_grad) == 0
    hrnet_w48.train()
    assert not hrnet_w48.training
    assert not any(m.training for m in hrnet_w48.modules())


def test_gradients_flow_through_frozen_prior_to_input():
    prior = SegmentationPrior(LIGHT_SEG)
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    prior(x)['logits'].logsumexp(1).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters())


def test_mmseg_checkpoint_round_trip_identical_outputs(tmp_path):
    torch.manual_seed(1)
    reference = _build_mmseg_encoder_decoder(DEFAULT_SEG_CONFIG)
    _randomise_bn_stats(reference)
    path = tmp_path / 'fcn_hr48_ade20k.pth'
    torch.save({'meta': {'mmseg_version': '1.2.2', 'iter': 160000}, 'state_dict': reference.state_dict()}, path)

    prior = SegmentationPrior(DEFAULT_SEG_CONFIG, checkpoint=str(path))
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        ours = prior(x)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        feats = reference.backbone((x - mean) / std)
        logits = reference.decode_head(feats)
    for a, b in zip(ours['feats'], feats):
        assert torch.equal(a, b)
    assert torch.equal(ours['logits'], logits)


def test_mismatched_checkpoint_names_file_and_keys(tmp_path):
    light = SegmentationPrior(LIGHT_SEG)
    path = tmp_path / 'hr18s.pth'
    torch.save({'state_dict': light.state_dict()}, path)
    with pytest.raises(CheckpointError) as err:
        SegmentationPrior(DEFAULT_SEG_CONFIG, checkpoint=str(path))
    msg = str(err.value)
    assert str(path) in msg
    assert 'missing keys' in msg or 'shape mismatches' in msg
    assert 'backbone.' in msg


def test_missing_and_unreadable_checkpoints_name_the_file(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(CheckpointError, match='nope.pth'):
        SegmentationPrior(LIGHT_SEG, checkpoint=str(missing))
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint at all' * 10)
    with pytest.raises(CheckpointError, match='garbage.pth'):
        SegmentationPrior(LIGHT_SEG, checkpoint=str(garbage))


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickled_object_checkpoint_is_refused_without_opt_in(tmp_path):
    light = SegmentationPrior(LIGHT_SEG)
    path = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': light.state_dict(), 'meta': {'hook': _Payload()}}, path)
    with pytest.raises(CheckpointError, match='weights_only'):
        SegmentationPrior(LIGHT_SEG, checkpoint=str(path))
    # explicit opt-in for a trusted file loads it
    SegmentationPrior(LIGHT_SEG, checkpoint=str(path), allow_unsafe_checkpoint=True)


def test_random_prior_warns_loudly():
    import logging

    records = []

    class _Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    # BasicSR's root logger may not propagate (get_root_logger sets it up): listen on it directly
    logger = logging.getLogger('basicsr')
    handler = _Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        SegmentationPrior(LIGHT_SEG)
    finally:
        logger.removeHandler(handler)
    assert any('RANDOM WEIGHTS' in r for r in records)


def test_clip_local_file_round_trip(tmp_path):
    torch.manual_seed(2)
    source = CLIPPrior(TINY_CLIP, pretrained=None)
    path = tmp_path / 'tiny_clip.bin'
    torch.save(source.model.state_dict(), path)
    loaded = CLIPPrior(TINY_CLIP, pretrained=str(path))
    x = torch.rand(2, 3, 120, 90)
    with torch.no_grad():
        assert torch.equal(source.encode_image(x), loaded.encode_image(x))
    assert torch.equal(source.text_features, loaded.text_features)
    assert sum(p.numel() for p in loaded.parameters() if p.requires_grad) == 0


def test_clip_text_embeddings_cached_and_normalised():
    prior = CLIPPrior(TINY_CLIP, pretrained=None, prompts=['low-light image', 'high-light image'])
    cached = prior.text_embeddings(['low-light image', 'high-light image'])
    assert cached is prior.text_features
    assert torch.allclose(cached.norm(dim=-1), torch.ones(2), atol=1e-5)
    swapped = prior.text_embeddings(['high-light image', 'low-light image'])
    assert torch.allclose(swapped, cached.flip(0), atol=1e-6)


def test_clip_vit_b16_architecture_size():
    from deepspg_basicsr.priors.clip_prior import build_open_clip

    model = build_open_clip('ViT-B-16', pretrained=None)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 149.6


def test_clip_tag_offline_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(RuntimeError, match='local file'):
        CLIPPrior(TINY_CLIP.replace('DeepSPG-CLIP-tiny', 'ViT-B-16'), pretrained='openai')


def test_priors_frozen_inside_model_in_train_mode():
    from basicsr.models import build_model

    model = build_model(train_opt())
    model.net_g.train()
    for prior in (model.seg_prior, model.clip_prior):
        prior.train()
        assert not prior.training
        assert sum(p.numel() for p in prior.parameters() if p.requires_grad) == 0
    trainable = {id(p) for p in model.optimizer_g.param_groups[0]['params']}
    assert not trainable & {id(p) for p in model.seg_prior.parameters()}
    assert not trainable & {id(p) for p in model.clip_prior.parameters()}


def test_options_not_mutated_by_model():
    from basicsr.models import build_model

    opt = train_opt()
    before = copy.deepcopy(opt)
    build_model(opt)
    assert opt['train'] == before['train'] and opt['prior'] == before['prior']
