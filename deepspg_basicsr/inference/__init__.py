"""The one inference core (:class:`DeepSPGEnhancer`) and where its options come from."""

from .enhancer import DeepSPGEnhancer, colour_overlay, crop_features, resolve_device
from .options import EnhanceError, find_inference_problems, load_option_file, read_weights_record, save_weights

__all__ = [
    'DeepSPGEnhancer',
    'EnhanceError',
    'colour_overlay',
    'crop_features',
    'find_inference_problems',
    'load_option_file',
    'read_weights_record',
    'resolve_device',
    'save_weights',
]
