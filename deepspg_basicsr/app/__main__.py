"""``python -m deepspg_basicsr.app``: the same as ``deepspg-app``."""

import sys

from .cli import main

sys.exit(main())
