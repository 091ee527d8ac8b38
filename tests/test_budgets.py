"""Budgets per data set: MNIST and Fashion-MNIST keep the budgets their published results used;
32x32 RGB gets its own cpu variant that still runs the whole protocol."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from studies.service.budgets import BUDGETS, CPU_RGB32, budget_for


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_grayscale_budgets_are_unchanged(dataset: str) -> None:
    cpu = budget_for("cpu", dataset)
    assert cpu is BUDGETS["cpu"]
    assert (
        cpu.epochs,
        cpu.train_limit,
        cpu.val_size,
        cpu.seeds,
        cpu.w_grid,
        cpu.finetune_steps,
        cpu.knn_bank_size,
        cpu.label_fractions,
        cpu.optimizer,
        cpu.base_lr,
        cpu.looks,
    ) == (3, 20000, None, (0, 1), (0.0, 0.25, 0.5, 0.75, 0.9, 1.0), 300, 5000, (0.01, 0.1, 1.0), "adamw", 1e-3, (4, 6))
    assert budget_for("smoke", dataset) is BUDGETS["smoke"] and budget_for("gpu", dataset) is BUDGETS["gpu"]


@pytest.mark.parametrize("dataset", ["cifar10", "cifar10-jpeg", "imagefolder"])
def test_rgb32_cpu_budget_runs_the_whole_protocol(dataset: str) -> None:
    cpu = budget_for("cpu", dataset)
    assert cpu is CPU_RGB32 and cpu.name == "cpu"
    assert (
        len(cpu.seeds) >= 2
        and cpu.looks[-1] >= 6
        and cpu.w_grid[0] == 0.0
        and cpu.w_grid[-1] == 1.0
        and len(cpu.w_grid) >= 5
    )
    assert cpu.finetune_steps and cpu.label_fractions == (0.01, 0.1, 1.0) and cpu.epochs >= 3
    assert budget_for("gpu", dataset) is BUDGETS["gpu"]


def test_unknown_budget_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        budget_for("tpu", "mnist")


def test_set_values_of_budget_fields_change_the_budget_the_header_and_note_describe() -> None:
    from studies.service.catalogue import STUDIES
    from studies.service.notes import About, study_note
    from studies.service.options import StudyOptions, resolve_budget
    from studies.service.trainable import TrialContext, trial_config

    fixed = {"optim.epochs": 4, "eval.finetune": False, "eval.label_fractions": (0.1,), "noise.level": 0.3}
    budget = resolve_budget(StudyOptions(study="noise-sweep", budget="cpu", fixed=fixed, primary_fraction=0.1))
    assert (budget.epochs, budget.finetune_steps, budget.label_fractions) == (4, None, (0.1,))
    assert budget.train_limit == BUDGETS["cpu"].train_limit  # fields not --set stay the budget's
    # what the note says is what the trials run
    cfg = trial_config({}, TrialContext(dataset="mnist", budget=budget, data_dir="/d", run_root="", fixed=fixed))
    assert (cfg.optim.epochs, cfg.eval.finetune, cfg.eval.label_fractions) == (4, False, (0.1,))
    note = study_note(About(STUDIES["noise-sweep"], budget, "mnist", ""))
    assert "4 epochs per trial" in note and "no fine-tuning" in note and "at 10% labels" in note
    assert BUDGETS["cpu"].with_config({}) == BUDGETS["cpu"]
    assert {**BUDGETS["gpu"].config_values(), "data.train_limit": None} == BUDGETS["gpu"].config_values()


def test_the_rgb32_cpu_budget_trains_the_conv_net_at_batch_32_and_the_gpu_budget_the_papers_resnet() -> None:
    from studies.service.trainable import TrialContext, trial_config

    def model_and_batch(budget_name: str, device: str, fixed: dict[str, object] | None = None) -> tuple:
        fixed = fixed or {}
        budget = budget_for(budget_name, "cifar10-jpeg").with_config(fixed)
        cfg = trial_config(
            {},
            TrialContext(dataset="cifar10-jpeg", budget=budget, data_dir="/d", run_root="", device=device, fixed=fixed),
        )
        return cfg.model.backbone, cfg.model.width, cfg.model.decoder_width, cfg.optim.batch_size, cfg.optim.lr

    assert model_and_batch("cpu", "cpu") == ("convnet", 32, 32, 32, pytest.approx(1e-3))
    assert model_and_batch("gpu", "cuda") == ("resnet18", 64, 64, 256, pytest.approx(0.05))
    # --set of a model field is the budget's too (so the note says what the trials run)
    assert model_and_batch("cpu", "cpu", {"model.width": 16})[1] == 16
    assert budget_for("cpu", "cifar10-jpeg").with_config({"model.width": 16}).width == 16
    # MNIST and Fashion-MNIST keep their data set's network and batch: the budget names none
    assert all(getattr(BUDGETS["cpu"], name) is None for name in ("batch_size", "backbone", "width", "decoder_width"))


def test_a_confirmatory_w_sweeps_pilot_trials_do_not_fine_tune() -> None:
    from studies.service.trainable import TrialContext, trial_config

    ctx = TrialContext(dataset="mnist", budget=BUDGETS["cpu"], data_dir="/d", run_root="", pilot_seeds=(0, 1))
    assert not trial_config({"seed": 1, "w": 0.5}, ctx).eval.finetune  # chooses w on the validation probe
    assert trial_config({"seed": 2, "w": 0.5}, ctx).eval.finetune  # a fresh seed's trial fine-tunes
    assert trial_config({}, ctx).eval.finetune  # the study's settings (studies.service.identity): the budget's
    assert trial_config({"seed": 1, "w": 0.5}, dataclasses.replace(ctx, pilot_seeds=())).eval.finetune


def test_the_objectives_label_fraction_is_the_budgets_unless_named() -> None:
    from studies.service.options import StudyOptions, design_for, resolve_budget

    def primary(dataset: str, **named: object) -> tuple[float, float | None]:
        opts = StudyOptions(study="w-sweep", dataset=dataset, **named)
        budget = resolve_budget(opts)
        design = design_for(opts, budget)
        return budget.primary_fraction, design.primary_fraction if design else None

    assert primary("mnist") == (0.01, 0.01)
    # 1 % of CIFAR-10 is 45 labels a class: the pilots' DAE margin there was within one seed's noise
    assert primary("cifar10-jpeg") == (0.1, 0.1)
    assert primary("cifar10-jpeg", primary_fraction=0.01) == (0.01, 0.01)
    assert primary("mnist", budget="smoke", primary_fraction=0.1) == (0.1, 0.1)


def test_a_smaller_data_set_trains_more_epochs_to_see_the_budgets_images() -> None:
    budget = CPU_RGB32  # 5 epochs of 14,000 images
    assert budget.sized_for(14000) == budget and budget.sized_for(50000) == budget
    assert budget.sized_for(5310).epochs == 14  # ceil(5 x 14,000 / 5,310): 74,340 images seen, not 26,550
    assert budget.sized_for(7000).epochs == 10 and budget.sized_for(7000).train_limit == 14000
    assert BUDGETS["gpu"].sized_for(100) == BUDGETS["gpu"]  # the whole training set, whatever its size


def test_a_study_sizes_its_budget_to_the_folder_unless_the_epochs_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studies.service.options import StudyOptions, validate
    from tests import formats

    monkeypatch.setenv("SIDAE_CACHE_DIR", str(tmp_path / "cache"))
    formats.write_image_folder(tmp_path / "images", n_per_class=50, classes=4, size=32)  # 200 training images

    def epochs(*fixed: tuple[str, object], **named: object) -> tuple[int, int]:
        opts = StudyOptions(
            study="w-sweep",
            dataset="imagefolder",
            budget="smoke",
            data_dir=str(tmp_path / "images"),
            storage=f"sqlite:///{tmp_path / 'studies.db'}",
            fixed={"data.val_size": 40, **dict(fixed)},
            **named,
        )
        _, budget, ctx, data = validate(opts)
        assert ctx.budget == budget
        assert ctx.pilot_seeds == (() if "seeds" in named else budget.seeds)  # named seeds: descriptive, no pilot
        return budget.epochs, len(data.pretrain)

    assert epochs() == (26, 160)  # ceil(2 x 2,048 / 160): smoke's 2 epochs of 2,048 images
    assert epochs(epochs=3) == (3, 160)
    assert epochs(("optim.epochs", 3)) == (3, 160)
    assert epochs(train_limit=100) == (2, 100)  # the folder has the images the budget asks for
    assert epochs(seeds=(0, 1)) == (26, 160)
    assert not (tmp_path / "studies.db").exists()  # validation writes no storage
