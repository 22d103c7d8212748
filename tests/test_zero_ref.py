"""Zero-reference training (docs/ZERO_REFERENCE.md): losses, unpaired data, model, options, resume."""

import copy
import math
import os
import random
from pathlib import Path

from deepspg_basicsr.data import PairCheckError, UnpairedLLIEDataset
from deepspg_basicsr.losses import (
    SemanticConsistencyLoss,
    SemanticKLLoss,
    SPGColorConstancyLoss,
    SPGExposureLoss,
    SPGIllumSmoothnessLoss,
    SPGSpatialConsistencyLoss,
)
from deepspg_basicsr.metrics import calculate_brightness_llie, calculate_niqe_llie
from deepspg_basicsr.utils.checkpoint import load_checkpoint_file
from deepspg_basicsr.utils.options_check import find_option_problems

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils import tensor2img
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from llie_test_utils import train_opt
from torch.utils.data import DataLoader
from training_runs import kill_when_logged, launch, logged_losses, make_pairs, run_opt

ZERO_REF_LOSSES = {
    'exposure_opt': {'type': 'SPGExposureLoss', 'loss_weight': 10.0, 'patch_size': 8, 'target_level': 0.45},
    'color_opt': {'type': 'SPGColorConstancyLoss', 'loss_weight': 5.0, 'reference': 'input'},
    'spatial_opt': {'type': 'SPGSpatialConsistencyLoss', 'loss_weight': 5.0, 'scale_invariant': True},
    'illum_opt': {'type': 'SPGIllumSmoothnessLoss', 'loss_weight': 100.0},
    'output_smooth_opt': {'type': 'SPGIllumSmoothnessLoss', 'loss_weight': 1.0, 'power': 1},
    'semantic_opt': {'type': 'SemanticConsistencyLoss', 'loss_weight': 0.1},
    'clip_opt': {'type': 'CLIPMultimodalLoss', 'loss_weight': 0.1},
}
PAIRED_LOSSES = {'pixel_opt': None, 'edge_opt': None}


def zero_ref_opt(**train):
    """A tiny DeepSPGZeroRefModel (train_opt's network and priors) with every zero-reference loss."""
    losses = dict(copy.deepcopy(ZERO_REF_LOSSES), **PAIRED_LOSSES)
    losses.update(train)
    return train_opt(model_type='DeepSPGZeroRefModel', train=losses)


def _lq_batch(b=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 0.15


# ---------------------------------------------------------------------------------------- losses


def test_exposure_loss_against_hand_computation():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 6)
    target = 0.5
    grey = x.mean(dim=1)  # (2, 4, 6)
    means = [[grey[b, i : i + 2, j : j + 2].mean().item() for i in (0, 2) for j in (0, 2, 4)] for b in range(2)]
    l1 = sum(abs(m - target) for row in means for m in row) / 12
    l2 = sum((m - target) ** 2 for row in means for m in row) / 12
    assert SPGExposureLoss(patch_size=2, target_level=target)(x).item() == pytest.approx(l1, rel=1e-6)
    loss = SPGExposureLoss(loss_weight=3.0, patch_size=2, target_level=target, distance='l2')
    assert loss(x).item() == pytest.approx(3 * l2, rel=1e-6)
    per_patch = SPGExposureLoss(patch_size=2, target_level=target, reduction='none')(x)
    assert per_patch.shape == (2, 1, 2, 3)
    assert per_patch[1, 0, 1, 2].item() == pytest.approx(abs(means[1][5] - target), rel=1e-6)
    # a 5-pixel-wide image: the last column does not fill a patch and is left out
    assert SPGExposureLoss(patch_size=2)(x[..., :5]).item() == pytest.approx(
        SPGExposureLoss(patch_size=2)(x[..., :4]).item()
    )
    ref = SPGExposureLoss(patch_size=2, target_level='ref')
    assert ref.needs_reference
    assert ref(x, torch.tensor(target)).item() == pytest.approx(l1, rel=1e-6)
    with pytest.raises(ValueError, match='needs the reference level'):
        ref(x)
    with pytest.raises(ValueError, match='smaller than patch_size'):
        SPGExposureLoss(patch_size=16)(x)


def test_color_constancy_loss_against_hand_computation():
    x = torch.empty(2, 3, 3, 3)
    x[0, 0], x[0, 1], x[0, 2] = 0.2, 0.4, 0.7  # per-channel constants
    x[1] = 0.3  # grey: no loss
    x[1, 0, 0, 0] = 0.3 + 0.9  # one red pixel lifts the red mean by 0.1
    expected0 = (0.2 - 0.4) ** 2 + (0.2 - 0.7) ** 2 + (0.4 - 0.7) ** 2
    expected1 = 0.1**2 + 0.1**2 + 0.0
    per_image = SPGColorConstancyLoss(reduction='none')(x)
    assert per_image.tolist() == pytest.approx([expected0, expected1], rel=1e-5)
    assert SPGColorConstancyLoss(loss_weight=2.0)(x).item() == pytest.approx(expected0 + expected1, rel=1e-5)
    assert SPGColorConstancyLoss(reduction='sum')(x).item() == pytest.approx(expected0 + expected1, rel=1e-5)
    # reference 'input': chromaticities J^p / mean(J) of output and input
    inp = torch.empty(1, 3, 2, 2)
    inp[0, 0], inp[0, 1], inp[0, 2] = 0.02, 0.04, 0.06  # chromaticity (0.5, 1, 1.5)
    rel = SPGColorConstancyLoss(reference='input')
    assert rel(x[:1], inp).item() == pytest.approx(
        (0.2 / (1.3 / 3) - 0.5) ** 2 + (0.4 / (1.3 / 3) - 1) ** 2 + (0.7 / (1.3 / 3) - 1.5) ** 2, rel=1e-5
    )
    assert rel(5 * inp, inp).item() == pytest.approx(0.0, abs=1e-10)  # brightening keeps the balance
    with pytest.raises(ValueError, match='needs the input'):
        rel(x)


def _spatial_by_hand(y, i):
    """Per-region sum over in-image 4-neighbours of (|Y_a - Y_b| - |I_a - I_b|)^2, as a list."""
    h, w = len(y), len(y[0])
    out = []
    for r in range(h):
        for c in range(w):
            total = 0.0
            for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w:
                    total += (abs(y[r][c] - y[rr][cc]) - abs(i[r][c] - i[rr][cc])) ** 2
            out.append(total)
    return out


def test_spatial_consistency_loss_against_hand_computation():
    torch.manual_seed(1)
    inp = torch.rand(1, 3, 4, 6) * 0.2
    out = torch.rand(1, 3, 4, 6)
    # region 2: the grey images pooled over 2x2 blocks, a 2x3 grid of regions
    y = [[out[0, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean().item() for c in range(3)] for r in range(2)]
    i = [[inp[0, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean().item() for c in range(3)] for r in range(2)]
    expected = _spatial_by_hand(y, i)
    loss = SPGSpatialConsistencyLoss(region_size=2, reduction='none')(out, inp)
    assert loss.shape == (1, 1, 2, 3)
    assert loss.flatten().tolist() == pytest.approx(expected, rel=1e-5)
    assert SPGSpatialConsistencyLoss(loss_weight=2.0, region_size=2)(out, inp).item() == pytest.approx(
        2 * sum(expected) / 6, rel=1e-5
    )
    # scale invariance: a global gain costs nothing with scale_invariant, something without
    assert SPGSpatialConsistencyLoss(region_size=2, scale_invariant=True)(3 * inp, inp).item() == pytest.approx(
        0.0, abs=1e-10
    )
    plain = SPGSpatialConsistencyLoss(region_size=2, reduction='sum')(3 * inp, inp).item()
    i2 = [[3 * v for v in row] for row in i]
    assert plain == pytest.approx(sum(_spatial_by_hand(i2, i)), rel=1e-5) and plain > 0
    mean_y = sum(map(sum, y)) / 6
    mean_i = sum(map(sum, i)) / 6
    y_n = [[v / mean_y for v in row] for row in y]
    i_n = [[v / mean_i for v in row] for row in i]
    invariant = SPGSpatialConsistencyLoss(region_size=2, reduction='sum', scale_invariant=True)(out, inp)
    assert invariant.item() == pytest.approx(sum(_spatial_by_hand(y_n, i_n)), rel=1e-5)


def test_illumination_smoothness_loss_against_hand_computation():
    illum = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # |dx|: row 0 -> 1, row 1 -> 2; |dy|: column 0 -> 2, column 1 -> 3; last column / row: 0
    assert SPGIllumSmoothnessLoss(power=1, reduction='none')(illum).flatten().tolist() == [3.0, 3.0, 2.0, 0.0]
    assert SPGIllumSmoothnessLoss(power=1)(illum).item() == pytest.approx(8 / 4)
    assert SPGIllumSmoothnessLoss(power=2, loss_weight=2.0)(illum).item() == pytest.approx(2 * (5 + 9 + 4 + 0) / 4)
    assert SPGIllumSmoothnessLoss()(torch.full((1, 3, 5, 5), 0.3)).item() == 0.0


def test_semantic_consistency_loss_against_hand_computation():
    out_logits = torch.tensor([[[[0.0]], [[1.0]]]])  # (1, 2, 1, 1)
    in_logits = torch.tensor([[[[2.0]], [[0.0]]]])
    p = torch.softmax(in_logits.flatten(), 0).tolist()
    q = torch.softmax(out_logits.flatten(), 0).tolist()
    kl = sum(a * math.log(a / b) for a, b in zip(p, q))
    assert SemanticConsistencyLoss()(out_logits, in_logits).item() == pytest.approx(kl, rel=1e-6)
    torch.manual_seed(0)
    a, b = torch.randn(2, 5, 4, 4), torch.randn(2, 5, 8, 8)  # the input's logits are resized
    assert torch.allclose(SemanticConsistencyLoss(temperature=2.0)(a, b), SemanticKLLoss(temperature=2.0)(a, b))


@pytest.mark.parametrize(
    'cls', [SPGExposureLoss, SPGColorConstancyLoss, SPGSpatialConsistencyLoss, SPGIllumSmoothnessLoss]
)
def test_unknown_reduction_is_refused(cls):
    with pytest.raises(ValueError, match='Unsupported reduction'):
        cls(reduction='avg')


def test_bad_loss_options_are_refused():
    with pytest.raises(ValueError, match='target_level'):
        SPGExposureLoss(target_level=1.5)
    with pytest.raises(ValueError, match='distance'):
        SPGExposureLoss(distance='l3')
    with pytest.raises(ValueError, match='power'):
        SPGIllumSmoothnessLoss(power=3)
    with pytest.raises(ValueError, match='reference'):
        SPGColorConstancyLoss(reference='white')


def test_brightness_metric():
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 2] = 255  # BGR: pure red
    assert calculate_brightness_llie(img) == pytest.approx(0.299, abs=2e-3)
    assert calculate_brightness_llie(img, convert_to='mean') == pytest.approx(1 / 3)
    assert calculate_brightness_llie(np.full((3, 3), 51, np.uint8)) == pytest.approx(0.2)


def test_niqe_refuses_a_single_block_clearly():
    with pytest.raises(ValueError, match='two 96x96 blocks'):
        calculate_niqe_llie(np.zeros((96, 150, 3), np.uint8))


# ------------------------------------------------------------------------------------------- data


def _write_images(folder, n, size=(40, 52), seed=0, ext='png'):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k in range(n):
        path = os.path.join(folder, f'{k}.{ext}')
        assert cv2.imwrite(path, rng.integers(0, 60, (*size, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_unpaired_dataset_folder_glob_and_lmdb_give_the_same_items(tmp_path):
    paths = _write_images(str(tmp_path / 'low'), 3)
    _write_images(str(tmp_path / 'low'), 1, seed=5, ext='jpg')  # '3.jpg': in the folder, not in the pattern
    lmdb_path = str(tmp_path / 'low.lmdb')
    make_lmdb_from_imgs(str(tmp_path / 'low'), lmdb_path, ['0.png', '1.png', '2.png'], ['0', '1', '2'])
    base = {'name': 'u', 'type': 'UnpairedLLIEDataset', 'phase': 'train', 'crop_size': 32, 'use_rot': True}
    folder = build_dataset(dict(base, dataroot_lq=str(tmp_path / 'low')))
    pattern = build_dataset(dict(base, dataroot_lq=str(tmp_path / 'low' / '*.png')))
    opt = dict(base, dataroot_lq=lmdb_path, io_backend={'type': 'lmdb'})
    frozen = copy.deepcopy(opt)
    db = UnpairedLLIEDataset(opt)
    assert len(folder) == 4 and len(pattern) == len(db) == 3
    for k in range(3):
        items = []
        for dataset in (pattern, db):
            random.seed(k)
            items.append(dataset[k])
        a, b = items
        assert set(a) == {'lq', 'lq_path'} and a['lq_path'] == paths[k] and b['lq_path'] == str(k)
        assert a['lq'].shape == (3, 32, 32) and a['lq'].dtype == torch.float32
        assert torch.equal(a['lq'], b['lq'])
    whole = UnpairedLLIEDataset(dict(base, phase='val', dataroot_lq=str(tmp_path / 'low' / '*.png')))[1]
    expected = cv2.imread(paths[1])[..., ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(whole['lq'].numpy(), expected, atol=1e-6)
    assert opt == frozen


def test_unpaired_dataset_reference_images_and_padding(tmp_path):
    _write_images(str(tmp_path / 'low'), 2, size=(20, 30))
    refs = _write_images(str(tmp_path / 'ref'), 3, size=(50, 50), seed=3)
    opt = {
        'dataroot_lq': str(tmp_path / 'low'),
        'dataroot_ref': str(tmp_path / 'ref'),
        'phase': 'train',
        'crop_size': 24,  # larger than the 20-pixel side: reflect-padded first
    }
    item = UnpairedLLIEDataset(opt)[0]
    assert set(item) == {'lq', 'lq_path', 'ref', 'ref_path'}
    assert item['lq'].shape == item['ref'].shape == (3, 24, 24) and item['ref_path'] in refs
    val = UnpairedLLIEDataset(dict(opt, phase='val'))
    assert [val[k]['ref_path'] for k in range(2)] == refs[:2]
    assert val[0]['lq'].shape == (3, 20, 30) and val[0]['ref'].shape == (3, 50, 50)
    with pytest.raises(PairCheckError, match=r'datasets\.train\.crop_size 41 .*Use crop_size <= 40'):
        UnpairedLLIEDataset(dict(opt, crop_size=41))[0]  # a far larger crop used to be padded until out of memory


def test_unpaired_dataset_reports_every_bad_file_at_once(tmp_path):
    low = tmp_path / 'low'
    _write_images(str(low), 2)
    (low / 'corrupt.png').write_bytes(b'\x89PNG not really')
    (low / 'notes.txt').write_text('not an image')
    (low / 'sub').mkdir()
    assert cv2.imwrite(str(low / 'tiny.png'), np.zeros((8, 40, 3), np.uint8))
    with pytest.raises(PairCheckError) as err:
        UnpairedLLIEDataset({'dataroot_lq': str(low), 'min_size': 16})
    text = str(err.value)
    assert len(err.value.problems) == 4, text
    for name in ('corrupt.png', 'notes.txt', 'sub', "image too small: '" + str(low / 'tiny.png')):
        assert name in text
    with pytest.raises(PairCheckError, match='no low-light files match the pattern'):
        UnpairedLLIEDataset({'dataroot_lq': str(low / '*.tif')})
    with pytest.raises(PairCheckError, match='folder does not exist'):
        UnpairedLLIEDataset({'dataroot_lq': str(tmp_path / 'nowhere')})
    with pytest.raises(ValueError, match="remove 'dataroot_gt'"):
        UnpairedLLIEDataset({'dataroot_lq': str(low), 'dataroot_gt': str(low)})
    with pytest.raises(KeyError, match='crop_size'):
        UnpairedLLIEDataset({'dataroot_lq': str(low), 'phase': 'train', 'check_images': False})


def test_unpaired_lmdb_too_small_is_named(tmp_path):
    _write_images(str(tmp_path / 'low'), 2, size=(12, 40))
    lmdb_path = str(tmp_path / 'low.lmdb')
    make_lmdb_from_imgs(str(tmp_path / 'low'), lmdb_path, ['0.png', '1.png'], ['0', '1'])
    with pytest.raises(PairCheckError, match="key '1' of the LMDB .* is 12x40; min_size is 16"):
        UnpairedLLIEDataset({'dataroot_lq': lmdb_path, 'io_backend': {'type': 'lmdb'}})


# ------------------------------------------------------------------------------------------ model


def test_trains_without_gt_and_never_reads_it():
    """Two steps on batches that have no ``gt`` at all; the same steps with a NaN ``gt`` in the
    batch log the same losses and end with the same weights (a read of it would poison them)."""
    runs = []
    for with_gt in (False, True):
        torch.manual_seed(0)
        model = build_model(zero_ref_opt())
        before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
        seg_before = {k: v.clone() for k, v in model.seg_prior.state_dict().items()}
        logs = []
        for it in (1, 2):
            batch = {'lq': _lq_batch(seed=it)}
            if with_gt:
                batch['gt'] = torch.full_like(batch['lq'], float('nan'))
            model.feed_data(batch)
            model.optimize_parameters(it)
            logs.append(model.get_current_log())
        assert set(logs[0]) == {'l_exp', 'l_col', 'l_spa', 'l_illum', 'l_smooth', 'l_sem', 'l_clip'}
        assert all(math.isfinite(v) for log in logs for v in log.values())
        assert any(not torch.equal(v, before[k]) for k, v in model.net_g.state_dict().items())
        assert all(torch.equal(v, seg_before[k]) for k, v in model.seg_prior.state_dict().items())
        runs.append((logs, model.net_g.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(v, runs[1][1][k]) for k, v in runs[0][1].items())


def test_logged_losses_match_the_loss_modules():
    torch.manual_seed(0)
    model = build_model(zero_ref_opt(semantic_opt=None, clip_opt=None))
    lq = _lq_batch()
    model.feed_data({'lq': lq})
    state = copy.deepcopy(model.net_g.state_dict())
    model.optimize_parameters(1)
    logs = model.get_current_log()
    model.net_g.load_state_dict(state)
    with torch.no_grad():
        res = model.enhance(model.net_g, lq, return_aux=True)
    out, illum = res['out'], res['illumination']
    expected = {
        'l_exp': SPGExposureLoss(10.0, patch_size=8, target_level=0.45)(out),
        'l_col': SPGColorConstancyLoss(5.0, reference='input')(out, lq),
        'l_spa': SPGSpatialConsistencyLoss(5.0, scale_invariant=True)(out, lq),
        'l_illum': SPGIllumSmoothnessLoss(100.0)(illum),
        'l_smooth': SPGIllumSmoothnessLoss(1.0, power=1)(out),
    }
    assert logs == pytest.approx({k: v.item() for k, v in expected.items()}, rel=1e-5)


def test_exposure_target_from_reference_images():
    torch.manual_seed(0)
    exposure = {'type': 'SPGExposureLoss', 'patch_size': 8, 'target_level': 'ref'}
    model = build_model(zero_ref_opt(exposure_opt=exposure, semantic_opt=None, clip_opt=None))
    lq, ref = _lq_batch(), torch.rand(2, 3, 40, 40)
    model.feed_data({'lq': lq})
    with pytest.raises(ValueError, match='dataroot_ref'):
        model.optimize_parameters(1)
    model.feed_data({'lq': lq, 'ref': ref})
    state = copy.deepcopy(model.net_g.state_dict())
    model.optimize_parameters(1)
    model.net_g.load_state_dict(state)
    with torch.no_grad():
        out = model.enhance(model.net_g, lq)
    expected = SPGExposureLoss(patch_size=8, target_level=float(ref.mean()))(out).item()
    assert model.get_current_log()['l_exp'] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('key', ['pixel_opt', 'edge_opt'])
def test_paired_only_loss_is_an_error_naming_the_key(key):
    paired = {'pixel_opt': {'type': 'SPGPixelLoss', 'loss_weight': 1.0}, 'edge_opt': {'type': 'SPGEdgeLoss'}}
    opt = zero_ref_opt(**{key: paired[key]})
    with pytest.raises(ValueError, match=rf'`train\.{key}` \(\w+\) is a paired-only loss'):
        build_model(opt)
    opt.update(datasets={'train': {'name': 't', 'type': 'UnpairedLLIEDataset', 'dataroot_lq': 'x', 'crop_size': 8}})
    opt['train'].update(total_iter=1, scheduler={'type': 'MultiStepLR', 'milestones': [1]})
    opt['datasets']['train'].update(batch_size_per_gpu=1, num_worker_per_gpu=0)
    opt['logger'] = {'print_freq': 1, 'save_checkpoint_freq': 1}
    problems = find_option_problems(opt)
    assert len(problems) == 1 and problems[0].startswith(f'`train.{key}`'), problems
    opt['train'][key] = dict(paired[key], loss_weight=0)  # switched off: fine
    assert find_option_problems(opt) == []
    opt['datasets']['train'].pop('crop_size')
    assert find_option_problems(opt) == ['missing key `datasets.train.crop_size`']


def test_validation_on_an_unpaired_folder_gives_niqe_and_brightness(tmp_path):
    folder = tmp_path / 'photos'
    _write_images(str(folder), 2, size=(100, 200))  # NIQE: two 96x96 blocks at least
    metrics = {'niqe': {'type': 'calculate_niqe_llie'}, 'bright': {'type': 'calculate_brightness_llie'}}
    opt = zero_ref_opt()
    opt.update(val={'metrics': metrics}, path={'visualization': str(tmp_path / 'vis')}, is_train=False)
    opt['path']['experiments_root'] = str(tmp_path)
    torch.manual_seed(0)
    model = build_model(opt)
    dataset = UnpairedLLIEDataset({'name': 'photos', 'dataroot_lq': str(folder)})
    model.validation(DataLoader(dataset, batch_size=1), 1, None, save_img=False)
    assert set(model.metric_results) == {'niqe', 'bright'}
    assert all(math.isfinite(v) for v in model.metric_results.values())
    values = []
    for k in range(2):
        model.feed_data({'lq': dataset[k]['lq'][None]})
        model.test()
        values.append(calculate_brightness_llie(tensor2img([model.output[0]])))
    assert model.metric_results['bright'] == pytest.approx(sum(values) / 2, rel=1e-6)


def test_fine_tunes_a_paired_checkpoint(tmp_path):
    torch.manual_seed(0)
    paired = build_model(train_opt())
    path = str(tmp_path / 'net_g_paired.pth')
    torch.save({'params': paired.net_g.state_dict()}, path)
    opt = zero_ref_opt()
    opt['path'] = {'pretrain_network_g': path}
    torch.manual_seed(1)
    model = build_model(opt)
    assert all(torch.equal(v, paired.net_g.state_dict()[k]) for k, v in model.net_g.state_dict().items())


# ----------------------------------------------------------------------------------------- resume


def test_sigkill_then_auto_resume_continues_exactly(tmp_path):
    """As the paired model's test in test_reliability.py: 10 unpaired images, batch 2, a state every
    4 iterations, killed once iteration 7 is logged; the resumed run logs the same losses."""
    data = make_pairs(str(tmp_path / 'data'), num=10)
    opt = run_opt('zr', data, total_iter=1000, save_freq=4)
    opt['model_type'] = 'DeepSPGZeroRefModel'
    train_set = opt['datasets']['train']
    train_set.update(type='UnpairedLLIEDataset', crop_size=train_set.pop('gt_size'))
    train_set.pop('dataroot_gt')
    opt['train'].update(copy.deepcopy(ZERO_REF_LOSSES), pixel_opt=None, edge_opt=None, clip_opt=None)
    opt_file = tmp_path / 'zr.yml'
    opt_file.write_text(yaml.safe_dump(opt))
    states = Path(tmp_path / 'experiments/zr/training_states')

    text = kill_when_logged(tmp_path, opt_file, 7)
    before = logged_losses(text)
    assert 7 in before and set(before[7]) == {'l_exp', 'l_col', 'l_spa', 'l_illum', 'l_smooth', 'l_sem'}, text[-3000:]
    assert sorted(int(p.stem) for p in states.glob('*.state')) == [4]

    resumed = launch(tmp_path, opt_file, '--auto_resume', '--force_yml', 'train:total_iter=8')
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert 'Resuming training from epoch: 0, iter: 4.' in out
    after = logged_losses(out)
    assert sorted(after) == [5, 6, 7, 8]
    for it in (5, 6, 7):
        assert after[it] == before[it], f'iter {it}: resumed {after[it]} vs uninterrupted {before[it]}'
    assert load_checkpoint_file(states / '8.state')['iter'] == 8
