"""Data: paired LLIE dataset, pair validation, LMDB preparation and the embedded demo data.

Modules are imported explicitly (no folder scanning), so ``PairedLLIEDataset`` is registered in
BasicSR's ``DATASET_REGISTRY`` exactly once.
"""

from . import demo_data, lmdb_prepare, pair_check, paired_llie_dataset
from .pair_check import PairCheckError, check_pairs, find_pair_problems
from .paired_llie_dataset import PairedLLIEDataset

__all__ = [
    'PairCheckError',
    'PairedLLIEDataset',
    'check_pairs',
    'demo_data',
    'find_pair_problems',
    'lmdb_prepare',
    'pair_check',
    'paired_llie_dataset',
]

# issue 11: zero-reference training on unpaired low-light images
from . import unpaired_llie_dataset  # noqa: E402
from .unpaired_llie_dataset import UnpairedLLIEDataset  # noqa: E402

__all__ += ['UnpairedLLIEDataset', 'unpaired_llie_dataset']

# fresh darkening of normal-light photos at every draw (the shipped model's training recipe)
from . import darkened_photo_dataset  # noqa: E402
from .darkened_photo_dataset import SPGDarkenedPhotoDataset  # noqa: E402

__all__ += ['SPGDarkenedPhotoDataset', 'darkened_photo_dataset']
