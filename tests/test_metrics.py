"""LLIE metrics: PSNR / SSIM with GT-mean correction, NIQE without ground truth."""

import math

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr.metrics import calculate_niqe_llie, calculate_psnr_llie, calculate_ssim_llie

import numpy as np
import pytest
from basicsr.metrics import calculate_metric, calculate_niqe, calculate_psnr, calculate_ssim
from skimage import data


@pytest.fixture(scope='module')
def pair():
    """A natural uint8 BGR ground truth (128x128 crop of astronaut) and a dimmer, noisy output."""
    gt = np.ascontiguousarray(data.astronaut()[100:228, 150:278, ::-1])
    rng = np.random.default_rng(0)
    out = np.clip(gt.astype(np.float64) * 0.6 + rng.normal(0, 6, gt.shape), 0, 255).round().astype(np.uint8)
    return out, gt


def hand_gt_mean_psnr(out, gt):
    """GT-mean PSNR written out in numpy: BT.601 grey means (cv2 BGR2GRAY weights), scale, clip, PSNR."""
    out = out.astype(np.float64)
    gt = gt.astype(np.float64)

    def grey_mean(img):  # img is BGR
        return (0.114 * img[..., 0] + 0.587 * img[..., 1] + 0.299 * img[..., 2]).mean()

    scaled = np.clip(out * grey_mean(gt) / grey_mean(out), 0, 255)
    mse = np.mean((scaled - gt) ** 2)
    return 10 * math.log10(255**2 / mse)


def test_gt_mean_psnr_matches_hand_computation(pair):
    out, gt = pair
    expected = hand_gt_mean_psnr(out, gt)
    assert calculate_psnr_llie(out, gt, gt_mean=True) == pytest.approx(expected, abs=1e-4)


def test_plain_metrics_equal_basicsr(pair):
    out, gt = pair
    assert calculate_psnr_llie(out, gt) == calculate_psnr(out, gt, crop_border=0)
    assert calculate_ssim_llie(out, gt) == calculate_ssim(out, gt, crop_border=0)
    assert calculate_psnr_llie(out, gt, crop_border=4) == calculate_psnr(out, gt, crop_border=4)
    assert calculate_psnr_llie(out, gt, test_y_channel=True) == calculate_psnr(
        out, gt, crop_border=0, test_y_channel=True
    )


def test_through_basicsr_calculate_metric(pair):
    out, gt = pair
    opt = {'type': 'calculate_psnr_llie', 'crop_border': 0, 'gt_mean': True}
    assert calculate_metric({'img': out, 'img2': gt}, opt) == calculate_psnr_llie(out, gt, gt_mean=True)
    assert opt['type'] == 'calculate_psnr_llie'  # caller's options untouched


def test_chw_and_float_inputs_agree(pair):
    out, gt = pair
    ref = calculate_psnr_llie(out, gt, gt_mean=True)
    chw = calculate_psnr_llie(out.transpose(2, 0, 1), gt.transpose(2, 0, 1), gt_mean=True, input_order='CHW')
    as_float = calculate_psnr_llie(out.astype(np.float32), gt.astype(np.float32), gt_mean=True)
    assert chw == pytest.approx(ref, abs=1e-9)
    assert as_float == pytest.approx(ref, abs=1e-9)


def test_gt_mean_helps_on_scaled_copy(pair):
    _, gt = pair
    dim = (gt.astype(np.float64) * 0.5).round().astype(np.uint8)  # quantised scaled copy
    plain_psnr, plain_ssim = calculate_psnr_llie(dim, gt), calculate_ssim_llie(dim, gt)
    corr_psnr, corr_ssim = (
        calculate_psnr_llie(dim, gt, gt_mean=True),
        calculate_ssim_llie(dim, gt, gt_mean=True),
    )
    assert corr_psnr >= plain_psnr + 20  # plain is about 12 dB: exposure error dominates
    assert corr_ssim >= plain_ssim
    assert corr_ssim > 0.99

    exact = gt.astype(np.float64) * 0.5  # exact (float) scaled copy: correction recovers gt
    assert calculate_psnr_llie(exact, gt, gt_mean=True) > 100
    assert calculate_ssim_llie(exact, gt, gt_mean=True) == pytest.approx(1.0, abs=1e-9)


def test_output_clipped_and_black_output(pair):
    _, gt = pair
    over = gt.astype(np.float64) + 300  # out of range: clipped to 255 before the metric
    assert calculate_psnr_llie(over, gt) == calculate_psnr(np.full_like(gt, 255), gt, crop_border=0)
    black = np.zeros_like(gt)
    assert calculate_psnr_llie(black, gt, gt_mean=True) == calculate_psnr(black, gt, crop_border=0)


def test_psnr_needs_ground_truth(pair):
    out, gt = pair
    with pytest.raises(ValueError, match='niqe'):
        calculate_psnr_llie(out, None)
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_psnr_llie(out[:64], gt)


def test_niqe_without_ground_truth():
    clean = np.ascontiguousarray(data.astronaut()[..., ::-1])
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 40, clean.shape), 0, 255).astype(np.uint8)

    score_clean = calculate_metric({'img': clean}, {'type': 'calculate_niqe_llie', 'crop_border': 0})
    score_noisy = calculate_niqe_llie(noisy, crop_border=0)
    assert math.isfinite(score_clean) and math.isfinite(score_noisy)
    assert score_clean == pytest.approx(calculate_niqe(clean, 0), abs=1e-9)
    assert score_noisy > score_clean + 3  # NIQE: lower is better
    assert calculate_niqe_llie(clean, clean) == score_clean  # img2 accepted and ignored


def test_niqe_too_small():
    with pytest.raises(ValueError, match='96x96'):
        calculate_niqe_llie(np.zeros((64, 200, 3), np.uint8))
