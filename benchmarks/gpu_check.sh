#!/usr/bin/env bash
# Training-step throughput on one CUDA GPU (161 s on an H200; the timeouts cap it at 5 minutes):
# train_throughput.py with --device cuda for the MNIST cases and the 32x32 RGB case at full
# ResNet-18 width (64, the cuda default), eagerly, then with --compile for MNIST w = 0.5 and the
# RGB case.
# Run from anywhere: bash benchmarks/gpu_check.sh (PY=... picks the interpreter).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1
status=0

"$PY" -c 'import torch; print("torch:", torch.__version__, "cuda:", torch.version.cuda)'
if ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu_check.sh: torch sees no CUDA GPU here; run it on a GPU machine" >&2
    exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

echo "== eager: all cases"
timeout 120 "$PY" benchmarks/train_throughput.py --device cuda || status=$?

echo "== torch.compile (the eager step is timed again beside it)"
timeout 180 "$PY" benchmarks/train_throughput.py --device cuda --compile --cases mnist_w0.5 rgb32_w0.5 || status=$?

echo "gpu_check exit status: $status"
exit "$status"
