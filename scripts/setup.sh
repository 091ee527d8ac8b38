#!/usr/bin/env bash
# Create .venv and install the project with its test extras. Idempotent: a second run only
# checks. torch/torchvision are pinned to the builds this project is tested with.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.sidae-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
    .venv/bin/pip install --quiet -e ".[cluster,dev]"
    touch "$stamp"
fi
