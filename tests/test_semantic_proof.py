"""Guard of the semantic-pathway proof (scripts/semantic_proof.py, docs/DEEPSPG.md): a prior run on the
ground truth (the oracle) must beat the network without semantics.

A small budget of the benchmark itself: the demo data, the demo's network and prior (HRNet-W18-small,
random weights), pixel + edge losses, the same seed and batches for both variants. MARGIN_DB comes from
the measured numbers (docs/DEEPSPG.md, "The semantic pathway, proven"); if SEM stops carrying the
prior's features into the output (e.g. the published channel-attention-only block,
``network_g.sem_spatial: false``), the oracle falls to the no-semantics level and this fails.
"""

import importlib.util
from pathlib import Path

from deepspg_basicsr.data.demo_data import make_demo_data

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location('semantic_proof', REPO / 'scripts' / 'semantic_proof.py')
semantic_proof = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(semantic_proof)

ITERS = 60
#: dB by which the oracle must beat no semantics on the training images (own features). Measured at
#: this budget (2-core CPU, torch 2.14, 1 thread): +0.37 dB (seed 0, the one tested) and +1.06 dB (seed 1);
#: at the benchmark's 200 iterations +1.23 dB, and +0.29 dB for the published SEM (docs/DEEPSPG.md).
MARGIN_DB = 0.2
#: The oracle's final training loss at most this fraction of no semantics' (measured 0.89 and 0.91).
LOSS_RATIO = 0.95


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('proof')
    make_demo_data(str(root))
    return str(root / 'LOL-v1')


@pytest.mark.slow
def test_oracle_features_beat_no_semantics(demo_root):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = semantic_proof.run_proof(
            demo_root, iters=ITERS, seed=0, variants=['no semantics', 'gt (oracle)'], log=lambda *a: None
        )
    finally:
        torch.set_num_threads(threads)
    none, oracle = res['no semantics'], res['gt (oracle)']
    gap = oracle['psnr_train_own'] - none['psnr_train_own']
    assert gap >= MARGIN_DB, (gap, res)
    assert oracle['l_pix_end'] <= LOSS_RATIO * none['l_pix_end'], res
