"""The CUDA check (deepspg_basicsr/cuda_check.py): its CPU dry run end to end (through scripts/cuda_check.sh),
and its helpers."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

from deepspg_basicsr import cuda_check

from training_runs import env

REPO = Path(__file__).resolve().parents[1]


def test_dry_run_end_to_end_writes_its_rows_between_the_markers(tmp_path):
    doc = tmp_path / 'BENCHMARKS.md'
    shutil.copy(REPO / 'docs' / 'BENCHMARKS.md', doc)
    before = doc.read_text()
    repo_doc = (REPO / 'docs' / 'BENCHMARKS.md').read_text()
    out = tmp_path / 'out'
    cmd = ['bash', str(REPO / 'scripts' / 'cuda_check.sh'), '--dry-run', '--threads', '1']
    cmd += ['--out', str(out), '--doc', str(doc)]
    proc = subprocess.run(cmd, env=dict(env(), PYTHON=sys.executable), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    results = json.loads((out / 'cuda_check.json').read_text())
    assert results['dry_run'] is True and results['failed'] == []
    assert results['tests']['ok']
    assert results['train']['none']['it_s'] > 0 and results['train']['bf16']['it_s'] > 0
    assert 'needs CUDA' in results['train']['fp16']['skipped']
    assert results['train']['none']['ok'] and all(math.isfinite(v) for v in results['train']['none']['losses'].values())
    assert {'60x40 default', '60x40 perf', '96x54 default', '96x54 perf'} <= set(results['inference'])
    assert results['agreement']['ok']  # CPU against CPU: identical builds

    section = (out / 'cuda_check.md').read_text()
    for heading in ('CUDA-marked tests', 'Training, LOL-v1 settings', 'Inference, whole pipeline', 'CPU vs CPU'):
        assert heading in section
    text = doc.read_text()
    assert text.count(cuda_check.BEGIN) == 1 and text.count(cuda_check.END) == 1
    assert 'DRY RUN' in text and 'no GPU was lent' not in text
    assert text.split(cuda_check.BEGIN)[0] == before.split(cuda_check.BEGIN)[0]  # nothing else touched
    assert (REPO / 'docs' / 'BENCHMARKS.md').read_text() == repo_doc  # the dry run writes only where told


def test_replace_section_replaces_or_appends():
    begin, end = cuda_check.BEGIN, cuda_check.END
    text = f'# T\n\nkeep\n\n{begin}\nold rows\n{end}\n\nafter\n'
    new = cuda_check.replace_section(text, '## CUDA\nnew rows\n')
    assert new == f'# T\n\nkeep\n\n{begin}\n## CUDA\nnew rows\n{end}\n\nafter\n'
    assert cuda_check.replace_section(new, 'x') == f'# T\n\nkeep\n\n{begin}\nx\n{end}\n\nafter\n'
    assert cuda_check.replace_section('# T\n', 'rows') == f'# T\n\n{begin}\nrows\n{end}\n'


def test_apply_puts_a_fetched_section_into_the_doc(tmp_path):
    doc, section = tmp_path / 'B.md', tmp_path / 'cuda_check.md'
    doc.write_text(f'# B\n{cuda_check.BEGIN}\nplaceholder\n{cuda_check.END}\n')
    section.write_text('## CUDA check\n| a |\n')
    cuda_check.main(['apply', str(section), '--doc', str(doc)])
    assert doc.read_text() == f'# B\n{cuda_check.BEGIN}\n## CUDA check\n| a |\n{cuda_check.END}\n'


def test_wheels_are_fetched_for_the_gpu_machine():
    args = cuda_check.pip_download_args('lmdb==3.0.0', '/tmp/w')
    assert args[args.index('--python-version') + 1] == '3.12'
    assert '--no-deps' in args and '--only-binary=:all:' in args
    assert {'manylinux_2_17_x86_64', 'manylinux2014_x86_64'} <= set(args)
    fits = cuda_check._fits
    assert fits('lmdb-3.0.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl', '3.12')
    assert fits('mmcv_lite-2.1.0-py2.py3-none-any.whl', '3.12')
    assert fits('basicsr-1.4.2-py3-none-any.whl', '3.12')
    assert not fits('lmdb-3.0.0-cp311-cp311-manylinux2014_x86_64.whl', '3.12')
    assert not fits('lmdb-3.0.0-cp312-cp312-macosx_11_0_arm64.whl', '3.12')
    # every dependency the GPU machine lacks is on the list, each once
    for name in ('basicsr', 'mmsegmentation', 'mmcv-lite', 'mmengine', 'open_clip_torch', 'lmdb', 'setuptools'):
        assert name in cuda_check.WHEELS
    assert len(set(cuda_check.WHEELS)) == len(cuda_check.WHEELS)
    assert os.path.relpath(cuda_check.WHEEL_DIR, REPO) == '.whl'
