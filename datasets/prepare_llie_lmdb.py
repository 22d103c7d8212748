"""Convert LOL-v1, LOL-v2 (real / synthetic), SID, SMID or any paired folders into BasicSR LMDB.

Usage::

    python datasets/prepare_llie_lmdb.py --dataset lol_v1 --root data/LOL-v1 --out datasets/LOL-v1_lmdb
    python datasets/prepare_llie_lmdb.py --low my/low --normal my/normal --out datasets/my_lmdb

Every pair is validated before anything is written. The logic lives in
:mod:`deepspg_basicsr.data.lmdb_prepare`; see docs/DATA.md for the folder layouts.
"""

import os
import sys

try:
    import deepspg_basicsr  # noqa: F401  (compat shims before basicsr)
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import deepspg_basicsr  # noqa: F401

from deepspg_basicsr.data.lmdb_prepare import main

if __name__ == '__main__':
    sys.exit(main())
