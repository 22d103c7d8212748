"""Every option file parses, names only registered components, and pairs train with test."""

import copy
from pathlib import Path

import pytest
import yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

OPTIONS = Path(__file__).resolve().parents[1] / 'options'
FILES = sorted(OPTIONS.glob('*.yml'))


def _load(path):
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize('path', FILES, ids=[p.name for p in FILES])
def test_option_file_names_registered_components(path):
    opt = _load(path)
    assert opt['name'] and opt['model_type']
    MODEL_REGISTRY.get(opt['model_type'])
    ARCH_REGISTRY.get(opt['network_g']['type'])
    if 'network_d' in opt:
        ARCH_REGISTRY.get(opt['network_d']['type'])
    for dataset in opt['datasets'].values():
        DATASET_REGISTRY.get(dataset['type'])
    for key, value in (opt.get('train') or {}).items():
        if key.endswith('_opt') and value:
            LOSS_REGISTRY.get(value['type'])
    for metric in (opt.get('val') or {}).get('metrics', {}).values():
        METRIC_REGISTRY.get(metric['type'])


@pytest.mark.parametrize('path', FILES, ids=[p.name for p in FILES])
def test_network_builds_and_takes_the_channels_its_prior_gives(path):
    """The network builds from the file, and a semantic one expects the channels of the prior
    branches the file names (read from the prior's config: no prior is built).

    Fails if a file's ``network_g.sem_channels`` and ``prior.seg_branches`` disagree (tried:
    ``seg_branches: [0, 1, 2]`` in train_DeepSPG_ESPNetv2_LOLv1.yml, whose prior gives 32 / 128 /
    256 there); such a file builds but stops when training starts."""
    from deepspg_basicsr.priors.segmentation_prior import DEFAULT_SEG_CONFIG, resolve_mmseg_config
    from deepspg_basicsr.weights import complete_prior_options

    from basicsr.archs import build_network
    from mmengine.config import Config

    opt = _load(path)
    net = build_network(copy.deepcopy(opt['network_g']))
    if not getattr(net, 'use_semantics', False):
        return
    prior = complete_prior_options(opt.get('prior'))
    config = Config.fromfile(resolve_mmseg_config(prior.get('seg_config') or DEFAULT_SEG_CONFIG))
    channels = list(config.model.decode_head.in_channels)
    assert list(net.sem_channels) == [channels[b] for b in prior.get('seg_branches') or (0, 1, 2)]


TRAIN_FILES = [p for p in FILES if p.name.startswith('train_DeepSPG') and 'TextGuidance' not in p.name]


@pytest.mark.parametrize('path', TRAIN_FILES, ids=[p.name for p in TRAIN_FILES])
def test_train_file_has_matching_test_file(path):
    test_path = OPTIONS / path.name.replace('train_', 'test_', 1)
    assert test_path.is_file(), f'missing {test_path.name}'
    train, test = _load(path), _load(test_path)
    assert train['network_g'] == test['network_g']
    assert train['prior'].get('seg_config') == test['prior'].get('seg_config')
    weights = test['path']['pretrain_network_g']
    if path.name == 'train_DeepSPG_ESPNetv2_photos.yml':  # the shipped model's recipe tests the shipped model
        from deepspg_basicsr.weights import DEFAULT_ENHANCER

        assert weights == DEFAULT_ENHANCER
    else:
        assert train['name'] in weights


def test_published_settings_in_lol_options():
    opt = _load(OPTIONS / 'train_DeepSPG_LOLv1.yml')
    assert opt['train']['optim_g']['type'] == 'Adam'
    assert float(opt['train']['optim_g']['lr']) == 3e-4
    assert opt['datasets']['train']['batch_size_per_gpu'] == 16
    assert opt['prior']['seg_config'] == 'hrnet/fcn_hr48_4xb4-160k_ade20k-512x512.py'
    assert opt['prior']['clip_model'] == 'ViT-B-16'
    assert opt['train']['total_iter'] == 500 * 31


def test_missing_prior_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    from deepspg_basicsr.utils.checkpoint import CheckpointError

    from basicsr.models import build_model

    opt = _load(OPTIONS / 'test_DeepSPG_LOLv1.yml')
    opt.update(num_gpu=0, is_train=False, dist=False, rank=0, world_size=1)
    opt['path']['pretrain_network_g'] = None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('DEEPSPG_WEIGHTS_DIR', str(tmp_path / 'cache'))  # an empty cache, and no download:
    monkeypatch.setenv('DEEPSPG_OFFLINE', '1')
    with pytest.raises(CheckpointError, match=r'fcn_hr48_512x512_160k_ade20k.*DEEPSPG_OFFLINE is set'):
        build_model(opt)
