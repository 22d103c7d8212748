"""Benchmark reports: JSON equals the logged table, the input reference row, paths, rank 0 only."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr.metrics.llie_psnr_ssim import calculate_niqe_llie, calculate_psnr_llie, calculate_ssim_llie
from deepspg_basicsr.utils.metric_report import FORMAT, MetricReport, option_file_info, report_path

import cv2
import numpy as np
import pytest
import yaml
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from llie_test_utils import train_opt

REPO = Path(__file__).resolve().parents[1]
METRICS = {
    'psnr': {'type': 'calculate_psnr_llie', 'crop_border': 0},
    'ssim': {'type': 'calculate_ssim_llie', 'crop_border': 0},
    'psnr_gt_mean': {'type': 'calculate_psnr_llie', 'crop_border': 0, 'gt_mean': True},
    'niqe': {'type': 'calculate_niqe_llie', 'crop_border': 0},
}
# Small nets without a prior: these tests are about the reporting, not the network.
NET = {'use_semantics': False, 'c2f': False}


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    """Three 8-bit pairs of 192 x 200 (NIQE fits its model on 96 x 96 blocks: 2 x 2 of them) in low/, high/."""
    root = tmp_path_factory.mktemp('pairs')
    rng = np.random.default_rng(0)
    for folder in ('low', 'high'):
        (root / folder).mkdir()
    yy, xx = np.mgrid[0:192, 0:200] / 20.0
    for i in range(3):
        smooth = np.stack([np.sin(yy * (1 + c) + i) * np.cos(xx - c) for c in range(3)], axis=-1)
        high = np.clip(128 + 80 * smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)
        low = np.clip(high * (0.15 + 0.05 * i) + rng.normal(0, 2, high.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / 'low' / f'img{i}.png'), low)
        cv2.imwrite(str(root / 'high' / f'img{i}.png'), high)
    return root


def _loader(pairs, name='pairs_val'):
    opt = {
        'name': name,
        'type': 'PairedLLIEDataset',
        'dataroot_gt': str(pairs / 'high'),
        'dataroot_lq': str(pairs / 'low'),
        'io_backend': {'type': 'disk'},
        'phase': 'val',
    }
    return build_dataloader(build_dataset(opt), opt, num_gpu=0, dist=False, sampler=None, seed=0)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture()
def log_messages():
    logger = logging.getLogger('basicsr')
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def _parse_table(messages):
    """{row label: {metric: cell}} of the last table logged."""
    text = [m for m in messages if m.startswith('Metrics of ')][-1]
    lines = [line for line in text.splitlines()[1:] if not set(line) <= set('-+ ')]
    header = [c.strip() for c in lines[0].split('|')]
    return {
        cells[0]: dict(zip(header[1:], cells[1:])) for cells in ([c.strip() for c in r.split('|')] for r in lines[1:])
    }


def test_test_mode_json_equals_the_logged_numbers_and_the_input_row_a_direct_computation(pairs, tmp_path, log_messages):
    opt = train_opt(
        is_train=False, network_g=NET, path={'results_root': str(tmp_path)}, val={'metrics': METRICS, 'suffix': None}
    )
    model = build_model(opt)
    model.validation(_loader(pairs), current_iter='unit', tb_logger=None, save_img=False)

    path = tmp_path / 'metrics_pairs_val.json'
    assert report_path(model.opt, 'pairs_val', 'unit') == str(path)
    doc = json.loads(path.read_text())
    assert doc['format'] == FORMAT and doc['dataset'] == 'pairs_val' and doc['num_images'] == 3
    assert doc['metrics'] == list(METRICS)
    assert [img['name'] for img in doc['images']] == ['img0', 'img1', 'img2']
    assert all((img['height'], img['width']) == (192, 200) for img in doc['images'])

    # the log table holds the JSON numbers (4 decimals), per image, mean and input rows
    table = _parse_table(log_messages)
    for img in doc['images']:
        assert table[img['name']] == {k: f'{v:.4f}' for k, v in img['metrics'].items()}
    assert table['mean'] == {k: f'{v:.4f}' for k, v in doc['mean'].items()}
    assert table['input (lq vs gt)'] == {k: f'{v:.4f}' for k, v in doc['input_mean'].items()}
    for k, v in doc['mean'].items():  # BasicSR's own validation line, unchanged
        assert any(f'# {k}: {v:.4f}' in m for m in log_messages)
    assert model.metric_results == pytest.approx(doc['mean'])
    for k in METRICS:
        assert doc['mean'][k] == pytest.approx(np.mean([img['metrics'][k] for img in doc['images']]))

    # the input row: lq against gt, computed here directly from the files
    for img in doc['images']:
        low = cv2.imread(str(pairs / 'low' / f'{img["name"]}.png'))
        high = cv2.imread(str(pairs / 'high' / f'{img["name"]}.png'))
        direct = {
            'psnr': calculate_psnr_llie(low, high),
            'ssim': calculate_ssim_llie(low, high),
            'psnr_gt_mean': calculate_psnr_llie(low, high, gt_mean=True),
            'niqe': calculate_niqe_llie(low),
        }
        assert img['input_metrics'] == pytest.approx(direct, rel=1e-12)
    assert doc['input_mean']['psnr'] < doc['input_mean']['psnr_gt_mean']  # dark input: GT-mean helps

    # the protocol and the provenance
    proto = doc['protocol']
    assert proto['metrics']['psnr_gt_mean'] == {
        'type': 'calculate_psnr_llie',
        'crop_border': 0,
        'gt_mean': True,
        'channels': 'RGB',
        'reference': 'ground truth',
    }
    assert proto['metrics']['niqe']['reference'] == 'none'
    assert proto['output_clamp'] == [0.0, 1.0] and proto['self_ensemble'] is False
    assert proto['input_reference'] and 'mean(grey(gt))' in proto['gt_mean_definition']
    assert doc['options']['network_g']['type'] == 'DeepSPG'
    env = doc['environment']
    assert env['torch'] and env['python'] and env['deepspg_basicsr'] and 'cpu_count' in env


def test_report_input_false_and_self_ensemble_flag(pairs, tmp_path, log_messages):
    metrics = {'psnr': METRICS['psnr']}
    opt = train_opt(
        is_train=False,
        network_g=NET,
        path={'results_root': str(tmp_path)},
        val={'metrics': metrics, 'report_input': False, 'self_ensemble': True},
    )
    model = build_model(opt)
    model.validation(_loader(pairs, 'no_input'), current_iter='unit', tb_logger=None, save_img=False)
    doc = json.loads((tmp_path / 'metrics_no_input.json').read_text())
    assert doc['input_mean'] is None and all(img['input_metrics'] is None for img in doc['images'])
    assert 'input (lq vs gt)' not in _parse_table(log_messages)
    assert doc['protocol']['self_ensemble'] is True and doc['protocol']['input_reference'] is None


def test_training_validation_writes_one_file_per_iteration_and_only_on_rank_0(pairs, tmp_path):
    metrics = {'psnr': METRICS['psnr']}
    opt = train_opt(
        network_g=NET,
        train={'edge_opt': None, 'semantic_opt': None, 'clip_opt': None},
        path={'experiments_root': str(tmp_path)},
        val={'metrics': metrics},
    )
    model = build_model(opt)
    loader = _loader(pairs)
    for it in (5, 10):
        model.validation(loader, current_iter=it, tb_logger=None, save_img=False)
    files = sorted(p.name for p in (tmp_path / 'metrics').iterdir())
    assert files == ['pairs_val_10.json', 'pairs_val_5.json']
    docs = [json.loads((tmp_path / 'metrics' / f).read_text()) for f in files]
    assert docs[0]['iter'] == 10 and docs[1]['iter'] == 5
    assert docs[0]['input_mean'] == docs[1]['input_mean']  # the input row is computed once, cached

    # distributed: BasicSR's dist_validation validates on rank 0 only; other ranks do nothing
    (tmp_path / 'metrics' / 'pairs_val_10.json').unlink()
    model.opt.update(dist=True, rank=1)
    model.metric_results = {'psnr': -1.0}
    model.validation(loader, current_iter=10, tb_logger=None, save_img=False)
    assert not (tmp_path / 'metrics' / 'pairs_val_10.json').exists()
    assert model.metric_results == {'psnr': -1.0}
    model.opt.update(rank=0)
    model.validation(loader, current_iter=10, tb_logger=None, save_img=False)
    assert (tmp_path / 'metrics' / 'pairs_val_10.json').exists()


def test_report_table_and_json_edge_cases(tmp_path):
    report = MetricReport('set', ['psnr', 'niqe'], current_iter=3)
    report.add('a', {'psnr': float('inf'), 'niqe': 5.0}, size=(4, 5))
    report.add('b', {'psnr': None, 'niqe': 7.0})  # a full-reference metric without ground truth
    assert report.mean() == {'psnr': float('inf'), 'niqe': 6.0} and report.mean('input_metrics') is None
    doc = report.write_json(str(tmp_path / 'r.json'), environment={})
    assert json.loads((tmp_path / 'r.json').read_text())['mean'] == {'psnr': 'inf', 'niqe': 6.0}
    assert doc['images'][1]['metrics']['psnr'] is None
    table = report.table()
    assert re.search(r'^b\s+\|\s+-\s+\|\s+7\.0000$', table, re.M), table
    assert option_file_info(['x', '-opt', str(tmp_path / 'r.json')])['sha256'] is not None
    assert option_file_info(['x']) is None


def test_basicsr_test_pipeline_writes_the_report(pairs, tmp_path):
    """The real ``python basicsr/test.py -opt ...`` run writes results/<name>/metrics_<dataset>.json."""
    opt = {
        'name': 'report_run',
        'model_type': 'DeepSPGModel',
        'scale': 1,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'test': {
                'name': 'pairs_test',
                'type': 'PairedLLIEDataset',
                'dataroot_gt': str(pairs / 'high'),
                'dataroot_lq': str(pairs / 'low'),
                'io_backend': {'type': 'disk'},
            }
        },
        'network_g': dict(train_opt()['network_g'], **NET),
        'path': {'pretrain_network_g': None, 'random_weights_g': True, 'strict_load_g': True},
        'val': {'save_img': False, 'suffix': None, 'metrics': {'psnr': METRICS['psnr']}},
    }
    opt_file = tmp_path / 'report.yml'
    opt_file.write_text(yaml.safe_dump(opt))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, str(REPO / 'basicsr/test.py'), '-opt', str(opt_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / 'results/report_run/metrics_pairs_test.json').read_text())
    assert doc['iter'] == 'report_run' and doc['num_images'] == 3
    assert doc['option_file']['path'] == str(opt_file)
    log = next((tmp_path / 'results/report_run').glob('test_*.log')).read_text()
    assert f'# psnr: {doc["mean"]["psnr"]:.4f}' in log
    assert re.search(r'^input \(lq vs gt\)\s+\|\s+' + re.escape(f'{doc["input_mean"]["psnr"]:.4f}'), log, re.M)
