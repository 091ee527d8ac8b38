"""Budgets per data set: MNIST and Fashion-MNIST keep the budgets their published results used;
32x32 RGB gets its own cpu variant that still runs the whole protocol."""

from __future__ import annotations

import pytest

from studies.service.budgets import BUDGETS, CPU_RGB32, budget_for


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_grayscale_budgets_are_unchanged(dataset: str) -> None:
    cpu = budget_for("cpu", dataset)
    assert cpu is BUDGETS["cpu"]
    assert (cpu.epochs, cpu.train_limit, cpu.val_size, cpu.seeds, cpu.w_grid, cpu.finetune_steps,
            cpu.knn_bank_size, cpu.label_fractions, cpu.optimizer, cpu.base_lr) == (
        3, 20000, None, (0, 1, 2), (0.0, 0.25, 0.5, 0.75, 0.9, 1.0), 300, 5000, (0.01, 0.1, 1.0), "adamw", 1e-3)
    assert budget_for("smoke", dataset) is BUDGETS["smoke"] and budget_for("gpu", dataset) is BUDGETS["gpu"]


@pytest.mark.parametrize("dataset", ["cifar10", "cifar10-jpeg", "imagefolder"])
def test_rgb32_cpu_budget_runs_the_whole_protocol(dataset: str) -> None:
    cpu = budget_for("cpu", dataset)
    assert cpu is CPU_RGB32 and cpu.name == "cpu"
    assert len(cpu.seeds) >= 3 and cpu.w_grid[0] == 0.0 and cpu.w_grid[-1] == 1.0 and len(cpu.w_grid) >= 5
    assert cpu.finetune_steps and cpu.label_fractions == (0.01, 0.1, 1.0) and cpu.epochs >= 3
    assert budget_for("gpu", dataset) is BUDGETS["gpu"]


def test_unknown_budget_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        budget_for("tpu", "mnist")
