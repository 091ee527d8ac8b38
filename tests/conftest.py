"""Shared fixtures. Real MNIST comes from $SIDAE_DATA_DIR (CI: ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from tests.smoke_study import smoke_study, study_in_process  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SIDAE_DATA_DIR", REPO.parent / "shared" / "data")).resolve()

torch.set_num_threads(2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end tests first (in their usual order): run in parallel (`make test`,
    pytest-xdist), the long ones start early, instead of one holding the run at the end while
    the other workers idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def has_real_mnist() -> bool:
    return (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not has_real_mnist():
        pytest.fail(
            f"real MNIST not found in {SHARED_DATA}: `make test` downloads it there "
            "(or run `python -m sidae.fetch mnist --data-dir DIR` and set SIDAE_DATA_DIR=DIR)"
        )
    return SHARED_DATA
