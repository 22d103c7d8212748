"""Known weights by name (:data:`KNOWN_WEIGHTS`): the priors, the packaged ESPNetv2 checkpoints, the
shipped enhancer (:data:`DEFAULT_ENHANCER`), and the verified download cache.
``resolve_weights('espnetv2-pascal')`` gives a local, checked file."""

from .download import WeightsError, cache_dir, download_file, file_sha256, verify_file
from .known_weights import (
    DEFAULT_ENHANCER,
    KNOWN_WEIGHTS,
    PACKAGE_WEIGHTS_DIR,
    KnownWeights,
    ResolvedWeights,
    complete_prior_options,
    downloads_allowed,
    known_weights_entry,
    locate_weights,
    resolve_weights,
)

__all__ = [
    'DEFAULT_ENHANCER',
    'KNOWN_WEIGHTS',
    'PACKAGE_WEIGHTS_DIR',
    'KnownWeights',
    'ResolvedWeights',
    'WeightsError',
    'cache_dir',
    'complete_prior_options',
    'download_file',
    'downloads_allowed',
    'file_sha256',
    'known_weights_entry',
    'locate_weights',
    'resolve_weights',
    'verify_file',
]
