"""Every registered name of the project resolves through BasicSR's registries, once."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

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
    'metric': ['calculate_psnr_llie', 'calculate_ssim_llie', 'calculate_brightness_llie', 'calculate_niqe_llie'],
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


def stock_names():
    """Names stock BasicSR registers, per kind, read from its source (not from the registries, which
    the project has filled too): each class or function decorated with ``<KIND>_REGISTRY.register()``,
    as the name it is registered under, and the name ``get`` falls back from (without the suffix)."""
    kinds = {f'{kind.upper()}_REGISTRY': kind for kind in REGISTRIES}
    root = Path(importlib.util.find_spec('basicsr').origin).parent
    names = {kind: {} for kind in REGISTRIES}
    for path in root.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                continue
            for dec in node.decorator_list:
                func = getattr(dec, 'func', None)
                registry = getattr(getattr(func, 'value', None), 'id', '')
                if isinstance(func, ast.Attribute) and func.attr == 'register' and registry in kinds:
                    suffix = next((k.value.value for k in dec.keywords if k.arg == 'suffix'), None)
                    registered = node.name + ('_' + suffix if suffix else '')
                    names[kinds[registry]][registered] = node.name
    return names


def test_project_names_do_not_shadow_basicsr_names():
    """No project entry takes a stock name (BasicSR refuses an exact repeat, but a project
    ``SRVGGNetCompact`` would silently win over ``SRVGGNetCompact_basicsr``, which ``get`` falls back
    to), and every stock name still resolves to BasicSR's own object.

    Fails if a project module puts its class under a stock name: tried with
    ``ARCH_REGISTRY._obj_map['SRVGGNetCompact'] = DeepSPG`` in ``deepspg_basicsr/archs/__init__.py``."""
    stock = stock_names()
    assert 'RRDBNet' in stock['arch'] and stock['arch']['SRVGGNetCompact_basicsr'] == 'SRVGGNetCompact'
    for kind, registry in REGISTRIES.items():
        taken = set(stock[kind]) | set(stock[kind].values())
        assert not taken & set(project_names(registry)), kind
        assert not taken & set(EXPECTED[kind]), kind
        for name in stock[kind]:
            assert registry.get(name).__module__.startswith('basicsr.'), (kind, name)
        for name in set(stock[kind].values()) - set(stock[kind]):  # the suffixed ones, asked for plainly
            assert registry.get(name).__module__.startswith('basicsr.'), (kind, name)


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
