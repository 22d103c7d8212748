"""Small builders shared by the tests (light priors so the suite runs on a 2-core CPU)."""

import copy

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

LIGHT_SEG = 'hrnet/fcn_hr18s_4xb4-160k_ade20k-512x512.py'
LIGHT_SEM_CHANNELS = [18, 36, 72]
TINY_CLIP = 'DeepSPG-CLIP-tiny'

BASE_TRAIN_OPT = {
    'name': 'unit',
    'model_type': 'DeepSPGModel',
    'num_gpu': 0,
    'is_train': True,
    'dist': False,
    'rank': 0,
    'world_size': 1,
    'network_g': {
        'type': 'DeepSPG',
        'num_feat': 8,
        'num_blocks': [1, 1, 1],
        'illum_feat': 8,
        'sem_channels': LIGHT_SEM_CHANNELS,
    },
    'prior': {'seg_config': LIGHT_SEG, 'clip_model': TINY_CLIP, 'clip_pretrained': None},
    'path': {},
    'train': {
        'optim_g': {'type': 'Adam', 'lr': 1e-3},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
        'pixel_opt': {'type': 'SPGPixelLoss', 'loss_weight': 1.0},
        'edge_opt': {'type': 'SPGEdgeLoss', 'loss_weight': 1.0},
        'semantic_opt': {'type': 'SemanticKLLoss', 'loss_weight': 0.1},
        'clip_opt': {'type': 'CLIPMultimodalLoss', 'loss_weight': 0.1},
    },
}


def train_opt(**overrides):
    """A deep copy of BASE_TRAIN_OPT with top-level sections updated (dicts merged one level)."""
    opt = copy.deepcopy(BASE_TRAIN_OPT)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(opt.get(key), dict):
            opt[key].update(copy.deepcopy(value))
        else:
            opt[key] = copy.deepcopy(value)
    return opt


def write_test_option_file(root):
    """Write ``root/test.yml`` (the small DeepSPG of BASE_TRAIN_OPT with the light prior) and
    ``root/net_g.pth`` (its random weights, seed 0); return the model that made them."""
    import torch
    import yaml
    from basicsr.models import build_model

    torch.manual_seed(0)
    model = build_model(train_opt(is_train=False))
    torch.save({'params': model.net_g.state_dict()}, root / 'net_g.pth')
    opt = {'model_type': 'DeepSPGModel', 'network_g': BASE_TRAIN_OPT['network_g'], 'prior': {'seg_config': LIGHT_SEG}}
    (root / 'test.yml').write_text(yaml.safe_dump(opt))
    return model


def write_demo_photo(path, size=(96, 128), seed=0):
    """Write a low-light photo as the demo data makes them (scikit-image's astronaut, darkened by
    :func:`deepspg_basicsr.data.demo_data.darken`), ``size`` = (h, w), 8-bit PNG; return it (BGR)."""
    import os

    from deepspg_basicsr.data.demo_data import darken, skimage_data_dir

    import cv2
    import numpy as np

    photo = cv2.imread(os.path.join(skimage_data_dir(), 'astronaut.png'), cv2.IMREAD_COLOR)
    photo = cv2.resize(photo, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    low, _ = darken(photo, np.random.default_rng(seed))
    assert cv2.imwrite(str(path), low)
    return low
