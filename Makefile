# One entry point for people and CI. Every target sets up .venv first (idempotent).
PY := .venv/bin/python
export SIDAE_DATA_DIR ?= $(abspath ../shared/data)
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup quickstart test bench

setup:
	bash scripts/setup.sh

# The main job on the embedded defaults.
quickstart: setup
	$(PY) -m sidae.train --dataset mnist --w 0.5 --epochs 1 --train-limit 5000 --out runs/quickstart

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/augment_pipeline.py
	$(PY) benchmarks/linear_probe.py
