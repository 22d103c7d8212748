"""Where an enhanced image's error comes from: exposure, colour, noise in flat regions, lost detail.

PSNR and SSIM say how far an output is from its ground truth; these measures say *why*. Each takes
uint8 RGB images (H, W, 3) of the same size and works on the output after its exposure is matched to
the ground truth (every channel scaled by ``mean(gt) / mean(out)``, the GT-mean correction), so
the parts after exposure do not count the exposure error again:

* ``exposure_stops``: ``log2(mean(out) / mean(gt))``, the photo-wide brightness error (0: right;
  -1: half as bright);
* ``psnr`` / ``psnr_gt_mean``: PSNR before and after the exposure match;
* ``colour_bias``: RMS over the three channels of the mean per-channel error (grey levels, 0-255)
  after the exposure match: a colour cast;
* ``flat_noise`` / ``flat_noise_gt``: in the ground truth's flattest regions (the 25 % of 8x8 blocks
  with the lowest local standard deviation), the standard deviation of the high-pass residual
  (image minus its 5x5 Gaussian blur, grey levels) of the output and of the ground truth itself:
  noise left behind shows as ``flat_noise`` above ``flat_noise_gt``;
* ``detail_ratio``: in the ground truth's most textured regions (the 25 % of 8x8 blocks with the
  largest gradient energy), the output's mean gradient magnitude over the ground truth's: below 1
  detail was smoothed away, above 1 noise or halos were added;
* ``gradient_error``: mean absolute difference of the luminance gradients (forward differences,
  grey levels) over the whole image: misplaced, lost or invented edges.
"""

import cv2
import numpy as np

BLOCK = 8
FRACTION = 0.25


def _luma(img):
    return img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114


def _block_means(x, block=BLOCK):
    h, w = (x.shape[0] // block) * block, (x.shape[1] // block) * block
    return x[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))


def _block_mask(scores, shape, lowest, fraction=FRACTION, block=BLOCK):
    """Pixel mask (shape) of the blocks whose score is among the ``fraction`` lowest (or highest)."""
    cut = np.quantile(scores, fraction if lowest else 1 - fraction)
    chosen = scores <= cut if lowest else scores >= cut
    mask = np.zeros(shape, bool)
    full = np.kron(chosen, np.ones((block, block), bool))
    mask[: full.shape[0], : full.shape[1]] = full
    return mask


def _gradients(y):
    gx = np.zeros_like(y)
    gy = np.zeros_like(y)
    gx[:, :-1] = y[:, 1:] - y[:, :-1]
    gy[:-1] = y[1:] - y[:-1]
    return gx, gy


def decompose_error(out, gt):
    """The measures of the module docstring for one image pair.

    Args:
        out (ndarray): Enhanced image, uint8 (H, W, 3), RGB.
        gt (ndarray): Ground truth, uint8 (H, W, 3), RGB.

    Returns:
        dict[str, float]: ``exposure_stops``, ``psnr``, ``psnr_gt_mean``, ``colour_bias``,
        ``flat_noise``, ``flat_noise_gt``, ``detail_ratio``, ``gradient_error``.
    """
    if out.shape != gt.shape or out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f'decompose_error needs two (H, W, 3) images of one size, got {out.shape} and {gt.shape}')
    o, g = out.astype(np.float64), gt.astype(np.float64)
    gain = g.mean() / max(o.mean(), 1e-6)
    om = np.clip(o * gain, 0, 255)

    def psnr(a):
        mse = np.mean((a - g) ** 2)
        return float('inf') if mse == 0 else float(10 * np.log10(255**2 / mse))

    yo, yg = _luma(om), _luma(g)
    local_std = np.sqrt(np.maximum(_block_means(yg**2) - _block_means(yg) ** 2, 0))
    flat = _block_mask(local_std, yg.shape, lowest=True)

    def high_pass_std(y):
        return float((y - cv2.GaussianBlur(y, (5, 5), 1.0))[flat].std())

    gxo, gyo = _gradients(yo)
    gxg, gyg = _gradients(yg)
    mag_o, mag_g = np.hypot(gxo, gyo), np.hypot(gxg, gyg)
    textured = _block_mask(_block_means(mag_g**2), yg.shape, lowest=False)
    return {
        'exposure_stops': float(np.log2(max(o.mean(), 1e-6) / max(g.mean(), 1e-6))),
        'psnr': psnr(o),
        'psnr_gt_mean': psnr(om),
        'colour_bias': float(np.sqrt(np.mean((om.mean(axis=(0, 1)) - g.mean(axis=(0, 1))) ** 2))),
        'flat_noise': high_pass_std(yo),
        'flat_noise_gt': high_pass_std(yg),
        'detail_ratio': float(mag_o[textured].mean() / max(mag_g[textured].mean(), 1e-6)),
        'gradient_error': float(np.mean(np.abs(gxo - gxg) + np.abs(gyo - gyg)) / 2),
    }


def mean_decomposition(pairs):
    """Mean of :func:`decompose_error` over ``pairs`` of (out, gt) uint8 RGB images."""
    rows = [decompose_error(o, g) for o, g in pairs]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
