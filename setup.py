"""Installation script of deepspg-basicsr.

By default the MMCV dependency is ``mmcv-lite`` (pure Python, installs in seconds, no compiled
ops; :mod:`deepspg_basicsr.compat` supplies the single op MMSegmentation needs at import time).
CUDA users who want the full MMCV with compiled ops install with::

    DEEPSPG_MMCV=full pip install -e .

which asks for ``mmcv>=2.0.0rc4,<2.2.0`` instead (built from source or taken from OpenMMLab's
wheel index with ``mim install``).
"""

import os
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version():
    text = (HERE / 'deepspg_basicsr' / 'version.py').read_text(encoding='utf-8')
    match = re.search(r"^__version__ = '([^']+)'", text, re.M)
    if match is None:
        raise RuntimeError('deepspg_basicsr/version.py has no __version__ line')
    return match.group(1)


def mmcv_requirement():
    flavour = os.environ.get('DEEPSPG_MMCV', 'lite').lower()
    if flavour == 'full':
        return 'mmcv>=2.0.0rc4,<2.2.0'
    if flavour != 'lite':
        raise ValueError(f"DEEPSPG_MMCV must be 'lite' or 'full', got {flavour!r}")
    return 'mmcv-lite==2.1.0'


INSTALL_REQUIRES = [
    # torch / torchvision are left unpinned so that pip resolves them as a matching pair.
    'torch',
    'torchvision',
    'basicsr==1.4.2',
    'mmsegmentation==1.2.2',
    mmcv_requirement(),
    'mmengine>=0.10,<1.0',
    'open_clip_torch>=2.20',
    'lmdb',
    'opencv-python',
    'numpy',
    'scikit-image',
    'pyyaml',
    'tqdm',
    # mmseg's tokenizer module imports these at package import time.
    'ftfy',
    'regex',
    # mmengine's config inheritance needs pkg_resources, removed in setuptools 81.
    'setuptools<81',
]

# deepspg-app: the version whose page the browser test drives (checked offline, analytics off).
GRADIO = 'gradio==6.31.0'

EXTRAS_REQUIRE = {
    # tests/test_app_browser.py also needs Debian's chromium + chromium-driver (.ci/run installs them)
    'test': [
        'pytest>=7',
        'hypothesis>=6',
        'ruff>=0.5',
        'fvcore',
        'onnx',
        'onnxruntime',
        'onnxscript',
        GRADIO,
        'selenium>=4.20,<5',
    ],
    'bench': ['fvcore', 'psutil', 'matplotlib'],
    # deepspg-export (torch.onnx.export with dynamo=True needs onnxscript) and --backend onnxruntime;
    # use onnxruntime-gpu instead of onnxruntime for CUDA.
    'deploy': ['onnx', 'onnxruntime', 'onnxscript'],
    # deepspg-app, the local web page
    'app': [GRADIO],
}

setup(
    name='deepspg-basicsr',
    version=read_version(),
    description='Semantic-prior-guided low-light image enhancement (DeepSPG) as a BasicSR plugin',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    license_files=['LICENSE', 'NOTICE'],
    # tested on Python 3.11; torch's current wheels and Gradio 6 need 3.10 or newer
    python_requires='>=3.10',
    packages=find_packages(include=['deepspg_basicsr', 'deepspg_basicsr.*']),
    package_data={
        'deepspg_basicsr': [
            'priors/model_configs/*.json',
            'priors/configs/*/*.py',
            # the two ESPNetv2 checkpoints (MIT) with their licence notice: docs/WEIGHTS.md
            'weights/files/*.pth',
            'weights/files/LICENSE.EdgeNets',
        ]
    },
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        'console_scripts': [
            'deepspg-train=deepspg_basicsr.train:main',
            'deepspg-test=deepspg_basicsr.test:main',
            'deepspg-enhance=deepspg_basicsr.enhance:main',
            'deepspg-export=deepspg_basicsr.export:main',
            'deepspg-app=deepspg_basicsr.app.cli:main',
            'deepspg-bench=deepspg_basicsr.bench.cli:main',
        ]
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.11',
        'Topic :: Scientific/Engineering :: Image Processing',
    ],
)
