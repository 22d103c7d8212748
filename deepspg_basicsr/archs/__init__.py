"""Architectures, registered in BasicSR's ARCH_REGISTRY by the explicit imports below."""

from .deepspg_arch import DeepSPG
from .sem_block import SemanticEmbeddingModule

__all__ = ['DeepSPG', 'SemanticEmbeddingModule']

# issue 5: semantic guidance for any BasicSR network
from .sem_wrapper_arch import SemanticGuidedWrapper  # noqa: E402
from .semantic_discriminator_arch import SemanticPatchDiscriminator  # noqa: E402
from .text_guidance import MultiLevelFusion, TextConditionedAttention  # noqa: E402

__all__ += ['MultiLevelFusion', 'SemanticGuidedWrapper']
__all__ += ['SemanticPatchDiscriminator', 'TextConditionedAttention']
