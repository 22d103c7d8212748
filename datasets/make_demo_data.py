"""Write the small synthetic LOL-v1-style demo data set (PNG + BasicSR LMDB).

Usage::

    python datasets/make_demo_data.py                 # -> datasets/demo, does nothing if complete
    python datasets/make_demo_data.py --force --seed 1 --root /tmp/demo

The logic lives in :mod:`deepspg_basicsr.data.demo_data`; see docs/DATA.md.
"""

import os
import sys

try:
    import deepspg_basicsr  # noqa: F401  (compat shims before basicsr)
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import deepspg_basicsr  # noqa: F401

from deepspg_basicsr.data.demo_data import main

if __name__ == '__main__':
    sys.exit(main())
