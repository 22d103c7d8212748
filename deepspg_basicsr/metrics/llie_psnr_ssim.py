"""PSNR / SSIM with optional GT-mean correction, and NIQE for sets without ground truth.

The functions are registered in BasicSR's ``METRIC_REGISTRY`` and are called the way BasicSR
calls its own metrics: ``nondist_validation`` turns the network output and the ground truth
into uint8 HWC **BGR** images with ``basicsr.utils.tensor2img`` (which clamps to [0, 1] first)
and passes them as ``img`` and ``img2``; when the validation set has no ground truth only
``img`` is passed. In an option file::

    val:
      metrics:
        psnr: {type: calculate_psnr_llie, crop_border: 0}
        psnr_gt_mean: {type: calculate_psnr_llie, crop_border: 0, gt_mean: true}
        ssim: {type: calculate_ssim_llie, crop_border: 0}
        ssim_gt_mean: {type: calculate_ssim_llie, crop_border: 0, gt_mean: true}
        niqe: {type: calculate_niqe_llie, crop_border: 0}   # no ground truth needed

Protocol (DESIGN.md section 7): RGB channels, crop border 0, output clipped to the valid range.
``gt_mean=True`` is the GT-mean correction of LLFlow / Retinexformer practice: the output is
multiplied by ``mean(grey(gt)) / mean(grey(output))`` so that its mean grey level matches the
target's, and clipped again. It uses the ground truth, so it measures structure and colour at a
matched exposure; report it next to the plain number and say which is which.

The core computations are BasicSR's own ``calculate_psnr``, ``calculate_ssim`` and
``calculate_niqe``.
"""

import cv2
import numpy as np
from basicsr.metrics.metric_util import reorder_image
from basicsr.metrics.niqe import calculate_niqe
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from basicsr.utils.registry import METRIC_REGISTRY

__all__ = ['calculate_psnr_llie', 'calculate_ssim_llie', 'calculate_niqe_llie', 'gt_mean_correct']

_MAX_VALUE = 255.0
# Smallest image side NIQE can score: it fits its model on 96x96 blocks.
_NIQE_BLOCK = 96


def _to_hwc_float(img, input_order):
    """Reorder ``img`` to HWC and return it as float64 clipped to [0, 255]."""
    img = reorder_image(np.asarray(img), input_order=input_order)
    return np.clip(img.astype(np.float64), 0.0, _MAX_VALUE)


def _mean_grey(img):
    """Mean grey level of an HWC BGR (or single-channel) float image in [0, 255]."""
    if img.shape[2] == 3:
        return float(cv2.cvtColor(img.astype(np.float32), cv2.COLOR_BGR2GRAY).mean())
    return float(img.mean())


def gt_mean_correct(img, img2):
    """Scale ``img`` so that its mean grey level equals that of ``img2``, then clip.

    Args:
        img (ndarray): Output image, HWC, BGR (or one channel), float in [0, 255].
        img2 (ndarray): Ground-truth image, same shape and layout.

    Returns:
        ndarray: float64 HWC image in [0, 255], not re-quantised. An all-black ``img`` (mean
        grey 0) cannot be scaled and is returned unchanged.
    """
    out_mean = _mean_grey(img)
    if out_mean <= 0:
        return img
    return np.clip(img * (_mean_grey(img2) / out_mean), 0.0, _MAX_VALUE)


def _prepare_pair(img, img2, input_order, gt_mean):
    if img2 is None:
        raise ValueError(
            'this metric needs a ground-truth image (img2); for a set without ground truth use calculate_niqe_llie'
        )
    if np.shape(img) != np.shape(img2):
        raise ValueError(f'image shapes differ: output {np.shape(img)}, ground truth {np.shape(img2)}')
    img = _to_hwc_float(img, input_order)
    img2 = _to_hwc_float(img2, input_order)
    if gt_mean:
        img = gt_mean_correct(img, img2)
    return img, img2


@METRIC_REGISTRY.register()
def calculate_psnr_llie(img, img2, crop_border=0, gt_mean=False, input_order='HWC', test_y_channel=False, **kwargs):
    """PSNR for low-light enhancement, with optional GT-mean correction.

    Args:
        img (ndarray): Output image in [0, 255], uint8 or float, BGR as BasicSR's
            ``tensor2img`` returns it. Shape (H, W, C) or (C, H, W) per ``input_order``, or (H, W).
        img2 (ndarray): Ground truth, same shape, range and layout.
        crop_border (int): Pixels cropped from each edge before the metric. Default: 0.
        gt_mean (bool): Scale ``img`` so its mean grey level matches ``img2``'s (see
            :func:`gt_mean_correct`). Default: False.
        input_order (str): 'HWC' or 'CHW'. Default: 'HWC'.
        test_y_channel (bool): Measure on the Y channel of YCbCr instead of RGB. Default: False.

    Returns:
        float: PSNR in dB (``inf`` for identical images).
    """
    img, img2 = _prepare_pair(img, img2, input_order, gt_mean)
    return float(calculate_psnr(img, img2, crop_border, input_order='HWC', test_y_channel=test_y_channel))


@METRIC_REGISTRY.register()
def calculate_ssim_llie(img, img2, crop_border=0, gt_mean=False, input_order='HWC', test_y_channel=False, **kwargs):
    """SSIM for low-light enhancement, with optional GT-mean correction.

    Per-channel SSIM (MATLAB-compatible, BasicSR's ``calculate_ssim``) averaged over channels.

    Args:
        img (ndarray): Output image in [0, 255], uint8 or float, BGR as BasicSR's
            ``tensor2img`` returns it. Shape (H, W, C) or (C, H, W) per ``input_order``, or (H, W).
        img2 (ndarray): Ground truth, same shape, range and layout.
        crop_border (int): Pixels cropped from each edge before the metric. Default: 0.
        gt_mean (bool): Scale ``img`` so its mean grey level matches ``img2``'s. Default: False.
        input_order (str): 'HWC' or 'CHW'. Default: 'HWC'.
        test_y_channel (bool): Measure on the Y channel of YCbCr instead of RGB. Default: False.

    Returns:
        float: SSIM in [-1, 1].
    """
    img, img2 = _prepare_pair(img, img2, input_order, gt_mean)
    return float(calculate_ssim(img, img2, crop_border, input_order='HWC', test_y_channel=test_y_channel))


@METRIC_REGISTRY.register()
def calculate_niqe_llie(img, img2=None, crop_border=0, input_order='HWC', convert_to='y', **kwargs):
    """NIQE (no-reference; lower is better) for sets without ground truth.

    A thin wrapper over BasicSR's ``calculate_niqe`` that can be listed in the same ``metrics``
    block as the full-reference metrics: ``img2`` is accepted and ignored, and may be absent.

    Args:
        img (ndarray): Image in [0, 255], uint8 or float, BGR. Shape (H, W, C) or (C, H, W) per
            ``input_order``, or (H, W). At least two 96x96 blocks (96x192) after cropping.
        img2 (ndarray | None): Ignored.
        crop_border (int): Pixels cropped from each edge before the metric. Default: 0.
        input_order (str): 'HWC' or 'CHW'. Default: 'HWC'.
        convert_to (str): 'y' (MATLAB YCbCr) or 'gray'. Default: 'y'.

    Returns:
        float: NIQE score.
    """
    img = _to_hwc_float(img, input_order)
    h, w = img.shape[0] - 2 * crop_border, img.shape[1] - 2 * crop_border
    if min(h, w) < _NIQE_BLOCK or (h // _NIQE_BLOCK) * (w // _NIQE_BLOCK) < 2:
        # one block gives no covariance (NaN, then "SVD did not converge" inside BasicSR)
        raise ValueError(
            f'NIQE needs at least two {_NIQE_BLOCK}x{_NIQE_BLOCK} blocks (e.g. {_NIQE_BLOCK}x{2 * _NIQE_BLOCK} pixels) '
            f'after cropping, got {h}x{w}'
        )
    return float(calculate_niqe(img, crop_border, input_order='HWC', convert_to=convert_to))
