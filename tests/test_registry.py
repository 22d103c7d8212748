"""Every registered name of the project resolves through BasicSR's registries, once."""

import subprocess
import sys

import pytest
from basicsr.utils.registry import (
    ARCH_REGISTRY,
    DATASET_REGISTRY,
    LOSS_REGISTRY,
    METRIC_REGISTRY,
    MODEL_REGISTRY,
)
from llie_test_utils import BASE_TRAIN_OPT  # noqa: F401  (imports deepspg_basicsr first)

REGISTRIES = {
    'arch': ARCH_REGISTRY,
    'model': MODEL_REGISTRY,
    'loss': LOSS_REGISTRY,
    'dataset': DATASET_REGISTRY,
    'metric': METRIC_REGISTRY,
}

EXPECTED = {
    'arch': ['DeepSPG'],
    'model': ['DeepSPGModel', 'DeepSPGZeroRefModel'],
    'loss': [
        'SPGPixelLoss',
        'SPGEdgeLoss',
        'SemanticKLLoss',
        'CLIPMultimodalLoss',
        # issue 11: zero-reference training
        'SPGExposureLoss',
        'SPGColorConstancyLoss',
        'SPGSpatialConsistencyLoss',
        'SPGIllumSmoothnessLoss',
        'SemanticConsistencyLoss',
    ],
    'dataset': ['PairedLLIEDataset', 'UnpairedLLIEDataset'],
    'metric': ['calculate_psnr_llie', 'calculate_ssim_llie', 'calculate_brightness_llie'],
}


def project_names(registry):
    return sorted(name for name, obj in registry._obj_map.items() if obj.__module__.startswith('deepspg_basicsr'))


@pytest.mark.parametrize('kind', sorted(EXPECTED))
def test_expected_names_resolve(kind):
    registry = REGISTRIES[kind]
    for name in EXPECTED[kind]:
        obj = registry.get(name)
        assert obj.__module__.startswith('deepspg_basicsr.'), (name, obj.__module__)
    assert set(EXPECTED[kind]) <= set(project_names(registry))


def test_project_names_do_not_shadow_basicsr_names():
    # BasicSR raises on a second registration of a name, so a project name equal to a stock one
    # could not even import; check that every project entry lives in the project's modules.
    for kind, registry in REGISTRIES.items():
        for name in project_names(registry):
            assert registry.get(name).__module__.startswith('deepspg_basicsr.'), (kind, name)


SNIPPETS = {
    'package_first': 'import deepspg_basicsr, basicsr',
    'submodule_first': 'import deepspg_basicsr.losses.edge_loss, deepspg_basicsr.archs, deepspg_basicsr',
    'models_then_package': 'import deepspg_basicsr.models.deepspg_model as m; import deepspg_basicsr',
}


@pytest.mark.parametrize('order', sorted(SNIPPETS))
def test_registration_is_order_independent(order):
    code = SNIPPETS[order] + (
        '\nfrom basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY\n'
        'names = sorted(n for r in (ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY) for n, o in r._obj_map.items()'
        ' if o.__module__.startswith("deepspg_basicsr"))\n'
        'print(",".join(names))\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    names = out.stdout.strip().splitlines()[-1].split(',')
    assert len(names) == len(set(names))
    assert {'DeepSPG', 'DeepSPGModel', 'SPGEdgeLoss', 'SemanticKLLoss'} <= set(names)
