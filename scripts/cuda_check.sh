#!/usr/bin/env bash
# One command for CUDA (see deepspg_basicsr/cuda_check.py): on a machine with one CUDA GPU, torch and no network.
#
#   here, once, with the package registry:  python -m deepspg_basicsr.cuda_check prepare    (wheels into .whl/)
#   on the GPU machine, .whl/ carried along: bash scripts/cuda_check.sh --out "$OUT"
#   here, afterwards:                        python -m deepspg_basicsr.cuda_check apply <fetched>/cuda_check.md
#
# The project's other dependencies (basicsr, mmsegmentation, mmcv-lite, mmengine, open_clip_torch, lmdb, ...)
# are installed from .whl/ into a private folder (DEEPSPG_SITE, default /tmp/deepspg_site) when they do
# not import. Arguments go to `python -m deepspg_basicsr.cuda_check run` (--dry-run, --only, --iters, --doc, --out).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${DEEPSPG_SITE:-/tmp/deepspg_site}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# deepspg_basicsr first: its compat shims make basicsr importable on new torchvision
if ! "$PY" -c 'import deepspg_basicsr, basicsr, mmseg, mmengine, open_clip, lmdb' >/dev/null 2>&1; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "cuda_check.sh: the project's dependencies do not import and there is no .whl/ folder;" >&2
    echo "  run 'python -m deepspg_basicsr.cuda_check prepare' where pip works and carry .whl/ along" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH#"$PWD"}"
fi
exec "$PY" -m deepspg_basicsr.cuda_check run "$@"
