"""Static int8 quantisation of an exported model with ONNX Runtime's tools (changes the output).

QDQ format, every ``Conv`` quantised (weights int8 per output channel, activations uint8),
activation ranges calibrated (min-max) by running the model on a few images. The change of the
output and the speed-up are measured by ``deepspg-bench deploy`` (``docs/BENCHMARKS.md``).
"""

import os

import torch.nn.functional as F

__all__ = ['quantize_int8', 'calibration_images']


def calibration_images(folder, size=(200, 300), limit=8):
    """Up to ``limit`` images of ``folder`` as (1, 3, H, W) float32 RGB in [0, 1], resized to ``size``."""
    from ..enhance import collect_inputs
    from ..utils.image_io import read_image

    files, problems = collect_inputs([folder])
    if not files:
        raise ValueError(f'calibration folder {folder}: ' + '; '.join(m for _, m in problems))
    images = []
    for path in files[:limit]:
        x, _ = read_image(path)
        images.append(F.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=True))
    return images


def quantize_int8(src, dst, images):
    """Write the int8 (QDQ) version of the single-input model ``src`` to ``dst``.

    Args:
        src (str): fp32 ONNX model (input ``lq``).
        dst (str): Output file.
        images (list[Tensor]): Calibration inputs (1, 3, H, W) in [0, 1].
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{'lq': x.detach().float().cpu().numpy()} for x in images])

        def get_next(self):
            return next(self.items, None)

    pre = dst + '.pre.onnx'
    try:
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(
            pre,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=['Conv'],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        if os.path.exists(pre):
            os.remove(pre)
    return dst
