"""SPGDarkenedPhotoDataset: each training crop darkened afresh by the photo pairs' camera model."""

import os

from deepspg_basicsr.data.darkened_photo_dataset import SPGDarkenedPhotoDataset
from deepspg_basicsr.data.photo_pairs import darken, draw_darkening
from deepspg_basicsr.utils.image_io import write_png

import numpy as np
import pytest
import torch


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / 'high'
    folder.mkdir()
    for i, (h, w) in enumerate(((70, 90), (64, 80))):
        base = np.linspace(20, 235, w)[None, :, None] + rng.normal(0, 20, (h, w, 3))
        write_png(str(folder / f'p{i}.png'), np.clip(base, 0, 255).astype(np.uint8))
    return str(folder)


def _opt(root, **kw):
    return {'name': 't', 'phase': 'train', 'dataroot_gt': root, 'gt_size': 32, **kw}


def test_a_training_item_is_the_camera_model_applied_to_a_random_crop(photos):
    """Fails if the crop and the darkening stop drawing from the seeded global state in this order,
    or if lq / gt are not the darkened crop / the crop (e.g. the whole photo darkened, or BGR kept)."""
    import cv2

    ds = SPGDarkenedPhotoDataset(_opt(photos))
    np.random.seed(5)
    item = ds[1]
    img = cv2.imread(os.path.join(photos, 'p1.png'))
    np.random.seed(5)
    top, left = np.random.randint(0, 64 - 32 + 1), np.random.randint(0, 80 - 32 + 1)
    rng = np.random.default_rng(np.random.randint(2**31))
    params = draw_darkening(rng)
    crop = np.ascontiguousarray(img[top : top + 32, left : left + 32])
    low = darken(crop, rng=rng, **params)
    to_t = lambda a: torch.from_numpy(a[..., ::-1].transpose(2, 0, 1).copy()).float() / 255  # noqa: E731
    assert torch.equal(item['gt'], to_t(crop))
    assert torch.equal(item['lq'], to_t(low))
    assert item['darkening'].tolist() == [params['exposure'], params['peak'], params['read_sigma']]
    assert item['lq'].mean() < 0.5 * item['gt'].mean()  # darker: exposure at most 0.1 in linear light


def test_every_draw_is_a_new_darkening_within_the_ranges(photos):
    ds = SPGDarkenedPhotoDataset(_opt(photos, exposure_range=[0.05, 0.06], peak_range=[100, 200]))
    np.random.seed(0)
    params = torch.stack([ds[0]['darkening'] for _ in range(20)])
    assert len({tuple(p.tolist()) for p in params}) == 20
    assert params[:, 0].min() >= 0.05 and params[:, 0].max() <= 0.06
    assert params[:, 1].min() >= 100 and params[:, 1].max() <= 200
    assert params[:, 2].min() >= 5e-4 and params[:, 2].max() <= 2e-3  # the default read-noise range


def test_outside_training_the_darkening_is_fixed_per_photo(photos):
    a = SPGDarkenedPhotoDataset({'dataroot_gt': photos, 'phase': 'val', 'seed': 1})
    b = SPGDarkenedPhotoDataset({'dataroot_gt': photos, 'phase': 'val', 'seed': 1})
    c = SPGDarkenedPhotoDataset({'dataroot_gt': photos, 'phase': 'val', 'seed': 2})
    assert a[0]['lq'].shape == (3, 70, 90)
    assert torch.equal(a[0]['lq'], b[0]['lq']) and torch.equal(a[0]['lq'], a[0]['lq'])
    assert not torch.equal(a[0]['lq'], c[0]['lq'])


def test_basicsr_builds_it_from_options(photos):
    import deepspg_basicsr  # noqa: F401

    from basicsr.data import build_dataset

    ds = build_dataset({'type': 'SPGDarkenedPhotoDataset', **_opt(photos)})
    assert isinstance(ds, SPGDarkenedPhotoDataset) and len(ds) == 2


def test_bad_options_are_named(photos, tmp_path):
    with pytest.raises(KeyError, match='dataroot_gt'):
        SPGDarkenedPhotoDataset({'phase': 'train', 'gt_size': 32})
    with pytest.raises(FileNotFoundError, match='nowhere'):
        SPGDarkenedPhotoDataset(_opt(str(tmp_path / 'nowhere')))
    with pytest.raises(ValueError, match=r"gt_size 65 is larger than the photo '.*p1\.png' \(64x80"):
        SPGDarkenedPhotoDataset(_opt(photos, gt_size=65))
    with pytest.raises(ValueError, match=r'datasets\.train\.peak_range must be \[low, high\]'):
        SPGDarkenedPhotoDataset(_opt(photos, peak_range=[10, 1]))
    with pytest.raises(KeyError, match='gt_size'):
        SPGDarkenedPhotoDataset({'phase': 'train', 'dataroot_gt': photos})
