"""deepspg-basicsr: semantic-prior-guided low-light image enhancement as a BasicSR plugin.

Importing this package applies the compatibility shims (:mod:`deepspg_basicsr.compat`) and then
registers every arch, model, loss, dataset and metric of the project in BasicSR's registries,
by explicit imports (no folder scanning), so each name is registered exactly once.
"""

from . import compat
from .version import __version__

compat.apply_all()

from . import archs, data, losses, metrics, models  # noqa: E402  (registration after the shims)
from .inference import DeepSPGEnhancer  # noqa: E402

__all__ = ['DeepSPGEnhancer', '__version__', 'archs', 'data', 'losses', 'metrics', 'models']
