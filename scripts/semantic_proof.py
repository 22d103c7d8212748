"""The semantic-pathway proof: ``deepspg-bench proof`` (deepspg_basicsr/bench/proof.py). Kept as a thin script."""

import sys

from deepspg_basicsr.bench.proof import *  # noqa: F401,F403  (run_proof, report, ... for tests/test_semantic_proof.py)
from deepspg_basicsr.bench.proof import main

if __name__ == '__main__':
    sys.exit(main())
