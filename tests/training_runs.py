"""Tiny DeepSPG training runs in subprocesses, for the reliability and distributed tests.

A run is the repository's ``basicsr/train.py`` (or a given script) on a few synthetic 40x40
pairs, with a tiny DeepSPG, the light HRNet-W18-small prior (random weights) and, optionally,
the tiny CLIP. Losses are logged every iteration.
"""

import copy
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from llie_test_utils import LIGHT_SEG, LIGHT_SEM_CHANNELS, TINY_CLIP

REPO = Path(__file__).resolve().parents[1]
#: One logged training line of BasicSR's MessageLogger: iteration and the ``l_*`` values.
LOG_LINE = re.compile(r'iter:\s*(\d+),.*?\]\s+((?:l_\w+: \S+\s*)+)')


def make_pairs(root, num=8, size=40, seed=0):
    """``root/low`` and ``root/high`` with ``num`` smooth random pairs of ``size`` x ``size``."""
    rng = np.random.default_rng(seed)
    for side in ('low', 'high'):
        os.makedirs(os.path.join(root, side), exist_ok=True)
    for i in range(num):
        base = cv2.resize(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(os.path.join(root, 'high', f'{i}.png'), base)
        cv2.imwrite(os.path.join(root, 'low', f'{i}.png'), (base * 0.2).astype(np.uint8))
    return root


def run_opt(name, data_root, total_iter, save_freq, batch=2, gt_size=32, augment=True, clip=False, val_freq=None):
    """Option dict of a tiny DeepSPG run on :func:`make_pairs` data."""
    losses = {
        'pixel_opt': {'type': 'SPGPixelLoss', 'loss_weight': 1.0},
        'edge_opt': {'type': 'SPGEdgeLoss', 'loss_weight': 1.0},
        'semantic_opt': {'type': 'SemanticKLLoss', 'loss_weight': 0.1},
    }
    if clip:
        losses['clip_opt'] = {'type': 'CLIPMultimodalLoss', 'loss_weight': 0.1}
    data = {'dataroot_gt': str(Path(data_root) / 'high'), 'dataroot_lq': str(Path(data_root) / 'low')}
    opt = {
        'name': name,
        'model_type': 'DeepSPGModel',
        'scale': 1,
        'num_gpu': 0,
        'manual_seed': 7,
        'datasets': {
            'train': dict(
                data,
                name='tiny_train',
                type='PairedLLIEDataset',
                gt_size=gt_size,
                use_hflip=augment,
                use_rot=augment,
                num_worker_per_gpu=0,
                batch_size_per_gpu=batch,
                dataset_enlarge_ratio=1,
            ),
            'val': dict(data, name='tiny_val', type='PairedLLIEDataset'),
        },
        'network_g': {
            'type': 'DeepSPG',
            'num_feat': 4,
            'num_blocks': [1, 1, 1],
            'illum_feat': 4,
            'num_heads': [1, 1, 1],
            'sem_channels': LIGHT_SEM_CHANNELS,
        },
        'prior': {'seg_config': LIGHT_SEG, 'clip_model': TINY_CLIP, 'clip_pretrained': None},
        'path': {},
        'train': dict(
            optim_g={'type': 'Adam', 'lr': 1e-3},
            scheduler={'type': 'MultiStepLR', 'milestones': [5], 'gamma': 0.5},
            total_iter=total_iter,
            warmup_iter=-1,
            **copy.deepcopy(losses),
        ),
        'val': {
            'val_freq': val_freq or save_freq,
            'save_img': False,
            'report_input': False,
            'metrics': {'psnr': {'type': 'calculate_psnr_llie', 'crop_border': 0}},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
    }
    return opt


def env():
    return dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')


def launch(cwd, opt_file, *extra, script=None, prefix=()):
    """Start ``python [prefix] <script> -opt <opt_file> [extra]`` in ``cwd``; stdout+stderr piped."""
    script = str(script or REPO / 'basicsr' / 'train.py')
    return subprocess.Popen(
        [sys.executable, *prefix, script, '-opt', str(opt_file), *extra],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_when_logged(cwd, opt_file, iteration, *extra):
    """Start a training run and SIGKILL it as soon as ``iteration`` is logged.

    Returns:
        str: Everything the run printed up to the kill.
    """
    victim = launch(cwd, opt_file, *extra)
    lines = []
    for line in victim.stdout:  # the uninterrupted run, read as it goes
        lines.append(line)
        if logged_losses(line).get(iteration):
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait()
    return ''.join(lines)


def logged_losses(text):
    """{iteration: {loss name: value}} of the training lines in a log."""
    out = {}
    for it, losses in LOG_LINE.findall(text):
        out[int(it)] = {k: float(v) for k, v in re.findall(r'(l_\w+): (\S+)', losses)}
    return out


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
