"""The expected time a study prints before it starts: each kind of step timed on this machine
(sidae.estimate), multiplied by the counts the configuration fixes, summed over a round's
trials and shared among its slots (studies.service.estimate)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from sidae.config import DataConfig, SidAEConfig, default_config, override
from sidae.data import DataSplits, split
from sidae.estimate import FitSeconds, StepSeconds, evaluation_seconds, run_seconds, seed_task_seconds, step_seconds
from sidae.image_set import ImageSet
from studies.service import estimate
from studies.service.budgets import BUDGETS
from studies.service.estimate import Expected, bf16_hint, cost_kind, duration, expected_lines, time_trials
from studies.service.trainable import TrialContext

STEPS = StepSeconds(
    pretrain=0.5, encode=0.001, fit=FitSeconds(0.01, 0.0001), fit_pixels=FitSeconds(0.02, 0.0003), finetune=0.2
)


def tiny_splits(n_train: int = 600, n_test: int = 200) -> DataSplits:
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> ImageSet:
        return ImageSet(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % 10)

    return split(images(n_train), images(n_test), None, DataConfig(dataset="mnist", val_size=100), "tiny")


def config(**values: object) -> SidAEConfig:
    base = {"optim.epochs": 2, "optim.batch_size": 64, "eval.knn_bank_size": 100, "eval.label_fractions": (0.1,)}
    return override(default_config("mnist", device="cpu"), {**base, **values})


def test_a_run_costs_its_steps_encodings_and_fine_tuning_as_the_config_counts_them() -> None:
    data = tiny_splits()  # 500 pre-training and labelled images, 100 validation, 200 test
    plain = config(**{"eval.finetune": False})
    # 2 epochs x (7 steps of 64 at 0.5 s + the monitor's 100 bank and 100 validation images);
    # evaluation: 100 bank + 50 labelled (10 %), 100 validation and 200 test images encoded,
    # and the 10 % probe's six fits: 5 L2 strengths on 40 of its 50 labels, then all 50
    probe = 6 * 0.01 + (5 * 40 + 50) * 0.0001
    assert math.isclose(run_seconds(plain, data, STEPS), 2 * (7 * 0.5 + 200 * 0.001) + 450 * 0.001 + probe)
    tuned = config(**{"eval.finetune": True, "eval.finetune_steps": 30})
    # fine-tuning: 30 steps, then its model encodes the 200 test images
    assert math.isclose(evaluation_seconds(tuned, data, STEPS), 650 * 0.001 + probe + 30 * 0.2)
    unprobed = config(**{"eval.finetune": False, "eval.linear": False})
    assert math.isclose(evaluation_seconds(unprobed, data, STEPS), 450 * 0.001)
    # a seed's task: the controls' probes on the untrained encoder's features (50 labelled and
    # 200 test images encoded) and on raw pixels (the same fits, wider), and the supervised
    # baseline's 30 fine-tuning steps with its test pass
    controls = 250 * 0.001 + 6 * (0.01 + 0.02) + (5 * 40 + 50) * (0.0001 + 0.0003)
    assert math.isclose(seed_task_seconds(tuned, data, STEPS), controls + 30 * 0.2 + 200 * 0.001)
    assert math.isclose(seed_task_seconds(plain, data, STEPS), controls)
    assert seed_task_seconds(unprobed, data, STEPS) == 0.0  # neither probes nor fine-tunes: no task
    # a budget is its images seen: twice the epochs, twice the pre-training
    longer = config(**{"eval.finetune": False, "optim.epochs": 4})
    assert math.isclose(run_seconds(longer, data, STEPS) - run_seconds(plain, data, STEPS), 2 * (7 * 0.5 + 0.2))


def test_steps_are_timed_on_the_runs_own_model_and_fine_tuning_only_when_it_runs() -> None:
    data = tiny_splits()
    timed = step_seconds(config(**{"eval.finetune": False, "w": 0.5}), data)
    assert timed.pretrain > 0 and timed.encode > 0 and timed.finetune == 0.0
    # each fit: a fixed part and a part per image, neither below zero (a line through fits of 256
    # and of all 500 labelled images: L-BFGS may take fewer iterations on more images)
    assert all(fit.call >= 0 and fit.image >= 0 and fit.of([256]) > 0 for fit in (timed.fit, timed.fit_pixels))
    assert step_seconds(config(**{"eval.finetune": True, "eval.finetune_steps": 5}), data).finetune > 0


def test_a_round_puts_each_task_on_the_slot_that_frees_first() -> None:
    expected = Expected(trial={0.0: 300.0, 0.5: 600.0, 1.0: 200.0}, seed_task=100.0)
    assert [cost_kind(w) for w in (0.0, 0.25, 0.9, 1.0)] == [0.0, 0.5, 0.5, 1.0]
    # the baseline task and the DAE start; SidAE follows the baseline (100 + 600), SimSiam the DAE
    assert expected.round_seconds([0.0, 0.25, 1.0], seed_tasks=1, slots=2) == 700
    # a trial is not split among idle slots: one trial on 8 slots takes as long as on one
    assert expected.round_seconds([0.5], seed_tasks=0, slots=8) == 600
    assert expected.round_seconds([0.5, 0.5, 0.5], seed_tasks=0, slots=1) == 1800
    even = Expected(trial={0.0: 600.0, 0.5: 600.0, 1.0: 600.0}, seed_task=0.0)
    lines = expected_lines(even, [0.0, 0.5, 1.0] * 2, seed_tasks=2, slots=2, confirmation_looks=(4, 6))
    assert lines[0].startswith("expected: about 30 min for 6 trial(s) and the baseline and controls of 2 seed(s), 2 at")
    # the chosen w, the DAE and SimSiam on 4 fresh seeds, with their 4 baseline tasks; 6 at the last look
    assert (
        lines[1] == "then the confirmation: 12 trials, about 1 h 0 min (18, about 1 h 30 min, if it needs every look)"
    )
    assert len(expected_lines(even, [0.5], 0, 2)) == 1  # no confirmation to come
    # a pilot's trials do not fine-tune: the confirmation's own costs, when timed, are the ones used
    lean = Expected(trial=even.trial, seed_task=0.0, confirmation=Expected({0.0: 900.0, 0.5: 900.0, 1.0: 900.0}, 0.0))
    assert expected_lines(lean, [0.5], 0, 2, confirmation_looks=(4,))[1].endswith("12 trials, about 1 h 30 min")


def test_a_pilot_trial_is_timed_without_fine_tuning_and_the_confirmations_with_it() -> None:
    budget = dataclasses.replace(
        BUDGETS["smoke"], epochs=1, knn_bank_size=100, label_fractions=(0.1,), primary_fraction=0.1, finetune_steps=5
    )
    ctx = TrialContext(dataset="mnist", budget=budget, data_dir="/d", run_root="", pilot_seeds=(0,))
    expected = time_trials(ctx, tiny_splits(), [{"seed": 0, "w": 0.0}], [0.0, 0.5], fresh_seed=1)
    assert expected.confirmation is not None and set(expected.trial) == set(expected.confirmation.trial) == {0.0, 0.5}
    for kind, seconds in expected.trial.items():
        assert seconds < expected.confirmation.trial[kind]  # the fresh seed's trial fine-tunes
    assert expected.seed_task < expected.confirmation.seed_task  # and its task runs the supervised baseline
    assert time_trials(ctx, tiny_splits(), [{"seed": 0, "w": 0.0}], [0.0]).confirmation is None


def test_durations_read_as_a_person_says_them() -> None:
    assert [duration(s) for s in (42, 719, 3600, 6540)] == ["42 s", "12 min", "1 h 0 min", "1 h 49 min"]


@pytest.mark.parametrize("amx", [False, True])
def test_cpu_trials_in_float32_on_a_cpu_with_amx_get_one_line_about_cpu_bf16(
    monkeypatch: pytest.MonkeyPatch, amx: bool
) -> None:
    monkeypatch.setattr(estimate, "cpu_has_amx", lambda: amx)
    hint = bf16_hint(SidAEConfig(), gpus_per_trial=0)
    assert len(hint) == int(amx) and all("--set cpu_bf16=True" in line for line in hint)
    assert bf16_hint(SidAEConfig(cpu_bf16=True), gpus_per_trial=0) == []
    assert bf16_hint(SidAEConfig(), gpus_per_trial=1) == []
