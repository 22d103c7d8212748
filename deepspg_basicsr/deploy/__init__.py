"""Deployment: the inference pipeline as one exportable module, and the ONNX Runtime backend.

``deepspg-export`` (:mod:`deepspg_basicsr.export`) writes the ONNX model; ``deepspg-enhance
--backend onnxruntime --onnx FILE`` runs it. onnx / onnxruntime are imported only when used
(``pip install .[deploy]``).
"""

from .ort_backend import OrtEnhancer, OrtSession, choose_providers, read_metadata
from .pipeline import DeepSPGEnhancerOnly, DeepSPGPipeline, ExportError, check_exportable, reflect_pad_to_multiple

__all__ = [
    'DeepSPGEnhancerOnly',
    'DeepSPGPipeline',
    'ExportError',
    'OrtEnhancer',
    'OrtSession',
    'check_exportable',
    'choose_providers',
    'read_metadata',
    'reflect_pad_to_multiple',
]
