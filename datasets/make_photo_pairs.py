"""Make paired low-light / normal-light images from real photographs, split by photo.

Usage::

    python datasets/make_photo_pairs.py                       # Debian wallpapers -> datasets/photos/LOL-v1
    python datasets/make_photo_pairs.py --src my/photos --out datasets/my_photos/LOL-v1 --seed 1
    python datasets/make_photo_pairs.py --src other/photos --test-fraction 1 --out /tmp/unseen   # all unseen

The logic lives in :mod:`deepspg_basicsr.data.photo_pairs`; see docs/DATA.md.
"""

import os
import sys

try:
    import deepspg_basicsr  # noqa: F401  (compat shims before basicsr)
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import deepspg_basicsr  # noqa: F401

from deepspg_basicsr.data.photo_pairs import main

if __name__ == '__main__':
    sys.exit(main())
