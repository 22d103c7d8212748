"""Mean brightness of an image: a no-reference number for sets without ground truth."""

import cv2
import numpy as np
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils.registry import METRIC_REGISTRY

__all__ = ['calculate_brightness_llie']


@METRIC_REGISTRY.register()
def calculate_brightness_llie(img, img2=None, crop_border=0, input_order='HWC', convert_to='gray', **kwargs):
    """Mean grey level of ``img`` in [0, 1] (no reference; compare with the input's and the
    exposure loss's target level). In an option file:
    ``brightness: {type: calculate_brightness_llie}``.

    Args:
        img (ndarray): Image in [0, 255], uint8 or float, BGR as BasicSR's ``tensor2img`` returns
            it. Shape (H, W, C) or (C, H, W) per ``input_order``, or (H, W).
        img2 (ndarray | None): Ignored (listed with full-reference metrics, it may be passed).
        crop_border (int): Pixels cropped from each edge first. Default: 0.
        input_order (str): 'HWC' or 'CHW'. Default: 'HWC'.
        convert_to (str): 'gray' (OpenCV BGR2GRAY: 0.299 R + 0.587 G + 0.114 B) or 'mean' (the
            plain mean of the channels). Default: 'gray'.

    Returns:
        float: The mean level, 0 (black) to 1 (white).
    """
    if convert_to not in ('gray', 'mean'):
        raise ValueError(f"convert_to must be 'gray' or 'mean', got {convert_to!r}")
    img = np.clip(reorder_image(np.asarray(img), input_order=input_order).astype(np.float32), 0.0, 255.0)
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    if img.size == 0:
        raise ValueError('calculate_brightness_llie: empty image after cropping')
    if convert_to == 'gray' and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return float(img.mean() / 255.0)
