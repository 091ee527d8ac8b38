#!/usr/bin/env bash
# Create .venv and install the project with its test extras. Idempotent: a second run only
# checks. torch/torchvision are pinned to the builds this project is tested with.
#
# TORCH_VARIANT=cuda (default): PyPI's torch, which bundles CUDA and runs on a CPU too; the venv
#   is about 6.5 GB (measured on x86_64), half of it CUDA libraries. TORCH_VARIANT=cpu: PyTorch's
#   CPU-only index (download.pytorch.org), without them, for a machine without an NVIDIA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VARIANT=${TORCH_VARIANT:-cuda}
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
case "$TORCH_VARIANT" in
    cuda) torch_index=() ;;
    cpu) torch_index=(--index-url "$TORCH_CPU_INDEX") ;;
    *) echo "setup.sh: TORCH_VARIANT must be cuda or cpu, got '$TORCH_VARIANT'" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        echo "setup.sh: '$PYTHON -m venv' failed: install Python's venv module (Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
stamp=.venv/.sidae-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install --quiet "${torch_index[@]}" "torch==2.14.1" "torchvision==0.29.1"
    .venv/bin/pip install --quiet -e ".[cluster,dev]"
    touch "$stamp"
fi
