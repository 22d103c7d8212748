"""The ESPNetv2 prior: the published checkpoints load strictly and segment real photos correctly.

The published files ship with the package (``deepspg_basicsr/weights/files/``, known weights
``espnetv2-pascal`` and ``espnetv2-city``, sha256-verified when resolved), so every test runs everywhere.
"""

import os

from deepspg_basicsr.deploy.batchnorm_fold import fold_batchnorm
from deepspg_basicsr.priors.espnetv2 import convert_published_checkpoint
from deepspg_basicsr.priors.segmentation_prior import SegmentationPrior
from deepspg_basicsr.utils.checkpoint import CheckpointError
from deepspg_basicsr.weights import KNOWN_WEIGHTS, resolve_weights

import numpy as np
import pytest
import torch
import torch.nn.functional as F

PASCAL_CONFIG = 'espnetv2/espnetv2_s2.0_pascal-384x384.py'
CITY_CONFIG = 'espnetv2/espnetv2_s2.0_city-1024x512.py'
PASCAL_FILE = 'espnetv2_s_2.0_pascal_384x384.pth'
CITY_FILE = 'espnetv2_s_2.0_city_1024x512.pth'
VOC = (
    'background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person '
    'pottedplant sheep sofa train tvmonitor'
).split()
NAMES = {PASCAL_FILE: 'espnetv2-pascal', CITY_FILE: 'espnetv2-city'}


def published(filename):
    """Path of a published checkpoint: the packaged copy, verified against its sha256."""
    path = resolve_weights(NAMES[filename])
    assert os.path.basename(path) == filename == KNOWN_WEIGHTS[NAMES[filename]].filename
    return path


@pytest.fixture(scope='module')
def pascal():
    return SegmentationPrior(PASCAL_CONFIG, checkpoint=published(PASCAL_FILE), out_branches=(1, 2, 3))


def _photo(name, size=(384, 384)):
    """A scikit-image photo as (1, 3, H, W) RGB in [0, 1], resized as the authors evaluate."""
    from skimage import data

    img = torch.from_numpy(getattr(data, name)()[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(img, size=size, mode='bilinear', align_corners=False)


def _class_shares(prior, img):
    with torch.no_grad():
        seg = prior.segment(img)[0]
    return np.bincount(seg.flatten().numpy(), minlength=prior.num_classes) / seg.numel()


def _published_layout(prior):
    """The prior's weights renamed as the authors' files name them (the inverse of the loader's map)."""
    out = {}
    for k, v in prior.state_dict().items():
        out[('base_net.' + k[len('backbone.') :]) if k.startswith('backbone.') else k[len('decode_head.') :]] = v
    return out


def test_architecture_sizes_and_shapes_without_checkpoint():
    prior = SegmentationPrior(PASCAL_CONFIG, out_branches=(1, 2, 3))
    assert prior.random_init
    assert round(sum(p.numel() for p in prior.parameters()) / 1e6, 2) == 0.79  # published: 0.79 M
    assert prior.branch_channels == [32, 128, 256, 512] and prior.out_channels == [128, 256, 512]
    assert prior.num_classes == 21
    with torch.no_grad():
        out = prior(torch.rand(1, 3, 75, 101))  # odd sizes: each level ceil(n / 2)
    assert [tuple(f.shape) for f in out['feats']] == [(1, 128, 19, 26), (1, 256, 10, 13), (1, 512, 5, 7)]
    assert tuple(out['logits'].shape) == (1, 21, 38, 51)


def test_weights_in_the_published_layout_load_back_exactly(tmp_path):
    torch.manual_seed(3)
    made = SegmentationPrior(PASCAL_CONFIG, random_seed=7)
    for m in made.modules():  # non-trivial BN statistics, so a wrong mapping shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / 'espnetv2_published_layout.pth'
    torch.save(_published_layout(made), path)
    loaded = SegmentationPrior(PASCAL_CONFIG, checkpoint=str(path))
    assert not loaded.random_init
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a, b = made(x), loaded(x)
    assert torch.equal(a['logits'], b['logits'])
    assert all(torch.equal(f, g) for f, g in zip(a['feats'], b['feats']))


def test_convert_published_checkpoint_maps_prefixes():
    state = {'base_net.level1.conv.weight': 1, 'bu_dec_l1.br.br.0.weight': 2}
    assert convert_published_checkpoint(state) == {
        'backbone.level1.conv.weight': 1,
        'decode_head.bu_dec_l1.br.br.0.weight': 2,
    }
    assert convert_published_checkpoint({'backbone.x': 1}) is None


def test_folded_prior_matches_and_channels_last_matches():
    prior = SegmentationPrior(PASCAL_CONFIG, out_branches=(1, 2, 3), random_seed=1)
    for m in prior.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 80, 120)
    with torch.no_grad():
        ref = prior(x)
        folded = SegmentationPrior(PASCAL_CONFIG, out_branches=(1, 2, 3), random_seed=1)
        folded.load_state_dict(prior.state_dict())
        count = fold_batchnorm(folded)
        out = folded(x)
        cl = folded.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    # every BN straight after a conv; not: the BN after each EESP's concatenation (3 down-samplers + 3 + 7
    # units), the BN after each pyramid pool's concatenation (4) and after its 1x1 (3), the decoder's 3 merges
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in prior.modules())
    assert count == n_bn - 13 - 4 - 3 - 3
    assert torch.allclose(out['logits'], ref['logits'], atol=1e-4)
    assert all(torch.allclose(f, g, atol=1e-4) for f, g in zip(out['feats'], ref['feats']))
    assert torch.allclose(cl['logits'], out['logits'], atol=1e-4)


def test_published_pascal_checkpoint_loads_strictly(pascal):
    state = torch.load(published(PASCAL_FILE), map_location='cpu', weights_only=True)
    assert len(state) == 526
    mine = SegmentationPrior(PASCAL_CONFIG).state_dict()
    assert set(convert_published_checkpoint(state)) == set(mine)  # no missing, no unexpected key
    assert not pascal.random_init


@pytest.mark.parametrize('photo, cls, share', [('astronaut', 'person', 0.3), ('chelsea', 'cat', 0.6)])
def test_pascal_prior_names_the_largest_object_of_real_photos(pascal, photo, cls, share):
    shares = _class_shares(pascal, _photo(photo))
    shares[0] = 0  # the largest *object* region (background aside)
    assert VOC[int(shares.argmax())] == cls
    assert shares.max() >= share


def test_pascal_prior_still_sees_the_cat_in_a_dark_photo(pascal):
    dark = (_photo('chelsea') ** 2.2 * 0.1) ** (1 / 2.2)  # 10 % exposure in linear light
    shares = _class_shares(pascal, dark)
    assert VOC[int(shares.argmax())] == 'cat'


def test_published_city_checkpoint_loads_and_mismatch_is_named(tmp_path):
    city = SegmentationPrior(CITY_CONFIG, checkpoint=published(CITY_FILE), out_branches=(1, 2, 3))
    assert city.num_classes == 20 and not city.random_init
    with pytest.raises(CheckpointError, match=r'espnetv2_s_2.0_city_1024x512.*merge_layer\.3'):
        SegmentationPrior(PASCAL_CONFIG, checkpoint=published(CITY_FILE))


def test_pipeline_with_the_real_prior_exports_to_onnx_with_parity(tmp_path):
    """deepspg-export and the ONNX Runtime backend with the published PASCAL prior: parity as for HRNet."""
    from deepspg_basicsr import export as X
    from deepspg_basicsr.deploy.ort_backend import OrtSession

    import yaml
    from basicsr.models import build_model
    from llie_test_utils import train_opt

    ckpt = published(PASCAL_FILE)
    net = dict(train_opt()['network_g'], sem_channels=[128, 256, 512])
    prior = {'seg_config': PASCAL_CONFIG, 'seg_checkpoint': ckpt, 'seg_branches': [1, 2, 3]}
    torch.manual_seed(0)
    model = build_model(train_opt(is_train=False, network_g=net, prior=prior))
    torch.save({'params': model.net_g.state_dict()}, tmp_path / 'net_g.pth')
    opt = {'model_type': 'DeepSPGModel', 'network_g': net, 'prior': prior}
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(opt))
    argv = [
        '-opt',
        str(tmp_path / 'test.yml'),
        '--weights',
        str(tmp_path / 'net_g.pth'),
        '-o',
        str(tmp_path / 'm.onnx'),
    ]
    assert X.main(argv) == 0
    session = OrtSession(str(tmp_path / 'm.onnx'), threads=1)
    for x in (_photo('chelsea', (201, 303)), _photo('astronaut', (227, 227))):
        with torch.inference_mode():
            ref = model.enhance(model.net_g.eval(), x)
        out = session.run(x)[0]
        assert float((out - ref).abs().max()) <= 1e-4
        assert float((out - x).abs().mean()) > 1e-3  # it computed something


def test_exposure_target_shows_the_prior_every_darkening_at_one_exposure(pascal):
    from deepspg_basicsr.priors.segmentation_prior import build_segmentation_prior

    levelled = build_segmentation_prior(
        {'seg_config': PASCAL_CONFIG, 'seg_checkpoint': 'espnetv2-pascal', 'seg_exposure_target': 0.4}
    )
    levelled.out_branches = [1, 2, 3]
    photo = _photo('chelsea', (128, 128))
    dark, darker = photo * 0.1, photo * 0.03  # no pixel clips once brought to a mean of 0.4
    with torch.no_grad():
        as_given = [pascal(x, return_logits=False)['feats'][-1] for x in (dark, darker)]
        levelled_feats = [levelled(x, return_logits=False)['feats'][-1] for x in (dark, darker)]
        # the gain is exactly the one that brings the mean to the target, then ImageNet's normalisation
        expected = pascal(photo * (0.4 / photo.mean()), return_logits=False)['feats'][-1]
    assert (as_given[0] - as_given[1]).abs().max() > 0.1  # the prior's features change with the exposure
    assert torch.allclose(levelled_feats[0], levelled_feats[1], atol=1e-4)  # not once levelled
    assert torch.allclose(levelled_feats[0], expected, atol=1e-4)
    with pytest.raises(ValueError, match='seg_exposure_target'):
        SegmentationPrior(PASCAL_CONFIG, exposure_target=2.0)
