"""Models, registered in BasicSR's MODEL_REGISTRY by the explicit imports below."""

from .deepspg_model import DeepSPGModel
from .llie_base_model import CollapsedOutputError, LLIEBaseModel, NonFiniteLossError

__all__ = ['CollapsedOutputError', 'DeepSPGModel', 'LLIEBaseModel', 'NonFiniteLossError']

# issue 5: semantic guidance for any BasicSR network
from .semantic_gan_model import SemanticGANModel  # noqa: E402
from .semantic_guided_model import SemanticGuidedModel  # noqa: E402

__all__ += ['SemanticGANModel', 'SemanticGuidedModel']

# issue 11: zero-reference training
from .deepspg_zeroref_model import DeepSPGZeroRefModel  # noqa: E402

__all__ += ['DeepSPGZeroRefModel']
