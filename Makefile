# One entry point for people and CI. Every target sets up .venv first (idempotent).
PY := .venv/bin/python
# The real MNIST / Fashion-MNIST copy beside the checkout when there is one, else ./data (downloaded).
export SIDAE_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(abspath data))
export RAY_USAGE_STATS_ENABLED := 0
# Tests at once (pytest-xdist; 0: one at a time in one process). A study test spends much of
# its time waiting (Ray's start and stop, a PostgreSQL restart), so two share 2 cores well;
# more do not help there: the suite is then CPU-bound (benchmarks/README.md, "The test suite").
TEST_WORKERS ?= 2
# worksteal, not load: with load, tests queued on a worker stay there, and one worker ran the
# last long study tests one by one for half an hour while the other sat idle (2026-12-05).

.PHONY: setup quickstart test check bench bench-studies

setup:
	bash scripts/setup.sh

# The main job on the embedded defaults.
quickstart: setup
	$(PY) studies/run.py --study w-sweep

# System parts first (installed when root on Debian/Ubuntu, else one line saying what to
# install), then the real MNIST and Fashion-MNIST the tests read (downloaded into SIDAE_DATA_DIR if missing).
test: setup
	bash scripts/check-system.sh --install
	$(PY) -m sidae.fetch mnist fashion-mnist
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

# The inner loop: lint and every test not marked slow (none runs a whole study on Ray; the
# PostgreSQL ones start their own server). `make test` runs these and the slow ones.
check: setup
	$(PY) -m sidae.fetch mnist fashion-mnist
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist worksteal

bench: setup
	$(PY) -m sidae.fetch mnist
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/augment_pipeline.py
	$(PY) benchmarks/linear_probe.py
	$(PY) benchmarks/image_folder_cache.py

# The study service's own figures: minutes each, not seconds (benchmarks/README.md).
bench-studies: setup
	$(PY) -m sidae.fetch mnist
	$(PY) benchmarks/study_overhead.py
	$(PY) benchmarks/early_stopping.py
	$(PY) benchmarks/cluster_scaling.py
