"""Architectures, registered in BasicSR's ARCH_REGISTRY by the explicit imports below."""

from .deepspg_arch import DeepSPG
from .sem_block import SemanticEmbeddingModule

__all__ = ['DeepSPG', 'SemanticEmbeddingModule']
