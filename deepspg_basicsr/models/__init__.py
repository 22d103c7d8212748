"""Models, registered in BasicSR's MODEL_REGISTRY by the explicit imports below."""

from .deepspg_model import DeepSPGModel
from .llie_base_model import LLIEBaseModel, NonFiniteLossError

__all__ = ['DeepSPGModel', 'LLIEBaseModel', 'NonFiniteLossError']
