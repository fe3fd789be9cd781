#!/usr/bin/env bash
# The whole GPU device call for issue 18's fine-tune candidates (docs/ablation.md, "How to run the GPU candidates"):
# installs the carried wheels (.gpu/wheels, from `make gpu-pack`) beside the machine's own torch, then runs
# `python -m benchmarks.training.gpu_run run` with results under $OUT. Extra arguments go to `run` (--smoke, --budget-s).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if [ ! -d .gpu/wheels ] || [ ! -f .gpu/base/weights.npz.xz ]; then
  echo "MISSING: .gpu/ (run 'make gpu-pack' here and name .gpu in the device call's carry)" >&2
  exit 2
fi
# GPU_RUN_SKIP_WHEELS=1: the Python already has these versions (`make gpu-smoke`: the wheels are for 3.12 there)
if [ "${GPU_RUN_SKIP_WHEELS:-0}" != 1 ]; then
  SITE=${GPU_RUN_SITE:-/tmp/gpu-run-site}
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/wheels/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # deterministic cuBLAS, read when CUDA first multiplies
exec "$PY" -m benchmarks.training.gpu_run run --out "${OUT:-var/gpu-run/out}" "$@"
