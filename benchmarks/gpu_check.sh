#!/usr/bin/env bash
# Training-step throughput on one CUDA GPU (161 s on an H200; the timeouts cap it at 5 minutes):
# train_throughput.py with --device cuda for the MNIST cases and the 32x32 RGB case at full
# ResNet-18 width (64, the cuda default), eagerly, then with --compile for MNIST w = 0.5 and the
# RGB case.
# Run from anywhere: bash benchmarks/gpu_check.sh (PY=... picks the interpreter).
# EAGER_ONLY=1 skips the torch.compile half; CHECK_TIMEOUT=S caps the eager half (default 120);
# DEVICE=cpu times one MNIST case briefly on the CPU: a dry run of the script (benchmarks/gpu_sweep.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DEVICE=${DEVICE:-cuda}
export PYTHONUNBUFFERED=1
status=0

"$PY" -c 'import torch; print("torch:", torch.__version__, "cuda:", torch.version.cuda)'
if [ "$DEVICE" = cuda ]; then
    if ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
        echo "gpu_check.sh: torch sees no CUDA GPU here; run it on a GPU machine" >&2
        exit 1
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    timing=()
else
    timing=(--repeats 1 --repeat-seconds 0.2 --cases mnist_w0.5)  # the dry run proves the script, it measures nothing
fi

echo "== eager"
timeout "${CHECK_TIMEOUT:-120}" "$PY" benchmarks/train_throughput.py --device "$DEVICE" "${timing[@]}" || status=$?

if [ "${EAGER_ONLY:-0}" != 1 ]; then
    echo "== torch.compile (the eager step is timed again beside it)"
    timeout 180 "$PY" benchmarks/train_throughput.py --device "$DEVICE" --compile --cases mnist_w0.5 rgb32_w0.5 \
        || status=$?
fi

echo "gpu_check exit status: $status"
exit "$status"
