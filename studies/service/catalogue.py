"""The named studies: each a search space, a sampler and a default scheduler.

A parameter's name is the dotted config path it sets (see sidae.config.override), so a trial's
parameters in the dashboard read as the config fields they change and the search space never
leaks into sidae/. Adding a study is one `Study(...)` entry in STUDIES.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from sidae.config import NOISE_KINDS
from studies.service.budgets import Budget

# define-by-run space: suggests parameters on the trial; gets the budget and the data set name
Space = Callable[[optuna.Trial, Budget, str], None]

GRAYSCALE_DATASETS = ("mnist", "fashion-mnist")


@dataclass(frozen=True)
class Study:
    name: str
    summary: str  # one line for --list and the dashboard note
    space: Space
    grid: Callable[[Budget], dict[str, list[Any]]] | None = None  # grid studies run every point
    scheduler: str = "asha"  # early stopping on epochs; "none" runs every trial to the end

    def sampler(self, budget: Budget, seed: int) -> optuna.samplers.BaseSampler:
        if self.grid is not None:
            # Every grid point is enqueued (studies.service.reconcile.plan), so the sampler never picks
            # one. Optuna's GridSampler must not be used here: it reads a `grid_id` that enqueued
            # trials lack, a KeyError once a single grid point is left (a one-point grid).
            return optuna.samplers.RandomSampler(seed=seed)
        # multivariate TPE with groups models the conditional noise-level parameter properly
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


def _w_grid(budget: Budget) -> dict[str, list[Any]]:
    # seed first: it varies slowest, so the first pass over w finishes before any repeat
    return {"seed": list(budget.seeds), "w": list(budget.w_grid)}


# The w-sweep's parameters as ranges, not as categorical choices of this run's grid: every point
# is enqueued, and a study keeps one distribution per parameter for life, so choices would make
# a rerun with a wider --w-grid or more --seeds fail ("CategoricalDistribution does not support
# dynamic value space"). As a float, w also plots on a numeric axis in the dashboard.
W_SWEEP_DISTRIBUTIONS = {
    "seed": optuna.distributions.IntDistribution(0, 2**31 - 1),
    "w": optuna.distributions.FloatDistribution(0.0, 1.0),
}


def _w_sweep(trial: optuna.Trial, budget: Budget, dataset: str) -> None:
    trial.suggest_int("seed", W_SWEEP_DISTRIBUTIONS["seed"].low, W_SWEEP_DISTRIBUTIONS["seed"].high)
    trial.suggest_float("w", W_SWEEP_DISTRIBUTIONS["w"].low, W_SWEEP_DISTRIBUTIONS["w"].high)


def _noised_simsiam_grid(budget: Budget) -> dict[str, list[Any]]:
    return {"seed": list(budget.seeds), "w": [1.0], "noise_at_w1": [True]}


def _noised_simsiam(trial: optuna.Trial, budget: Budget, dataset: str) -> None:
    _w_sweep(trial, budget, dataset)
    trial.suggest_categorical("noise_at_w1", [False, True])


def _noise(trial: optuna.Trial) -> None:
    trial.suggest_categorical("noise.kind", NOISE_KINDS)
    # sigma for gaussian, fraction of pixels for mask / salt-pepper: one range serves both
    trial.suggest_float("noise.level", 0.05, 0.9)


def _augment(trial: optuna.Trial, dataset: str) -> None:
    trial.suggest_float("augment.crop_scale_min", 0.2, 1.0)
    trial.suggest_float("augment.jitter", 0.0, 1.0)
    trial.suggest_float("augment.rotation", 0.0, 30.0)
    trial.suggest_float("augment.translate", 0.0, 0.2)
    if dataset != "mnist":  # digits are not mirror-symmetric
        trial.suggest_float("augment.flip_prob", 0.0, 0.5)
    if dataset not in GRAYSCALE_DATASETS:
        trial.suggest_float("augment.grayscale_prob", 0.0, 0.5)


def _noise_sweep(trial: optuna.Trial, budget: Budget, dataset: str) -> None:
    _noise(trial)


def _augment_search(trial: optuna.Trial, budget: Budget, dataset: str) -> None:
    _augment(trial, dataset)


def _joint(trial: optuna.Trial, budget: Budget, dataset: str) -> None:
    trial.suggest_float("w", 0.0, 1.0)
    _noise(trial)
    _augment(trial, dataset)
    # a decade either side of the budget's learning rate (AdamW's and SGD's differ 50-fold)
    trial.suggest_float("optim.base_lr", budget.base_lr / 10, budget.base_lr * 10, log=True)


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study(
            "w-sweep",
            "w over a grid from 0 (DAE) to 1 (SimSiam), repeated seeds; every point runs to the end",
            _w_sweep,
            grid=_w_grid,
            scheduler="none",
        ),
        # The control arm of a w-sweep (docs/method.md): SimSiam whose views carry the noise that
        # SidAE's encoder sees, so a SidAE-SimSiam gap can be split into the noise and the loss.
        # Its own study, not a point of the w-sweep: the confirmatory design (studies/analysis)
        # keys trials by w, and a second w = 1 arm there would overwrite SimSiam. Run it with the
        # w-sweep's --seeds and compare descriptively (docs/method.md says how).
        Study(
            "noised-simsiam",
            "control arm: SimSiam (w = 1) with SidAE's noise on its views (noise_at_w1), per seed",
            _noised_simsiam,
            grid=_noised_simsiam_grid,
            scheduler="none",
        ),
        Study(
            "noise-sweep", "noise kind (gaussian, mask, salt-pepper) and level at a fixed w (TPE, ASHA)", _noise_sweep
        ),
        Study(
            "augment-search",
            "augmentation strengths: crop scale, jitter, rotation, translation, flips (TPE, ASHA)",
            _augment_search,
        ),
        Study("joint", "w, noise, augmentations and learning rate together (TPE, ASHA)", _joint),
    )
}


def grid_points(study: Study, budget: Budget) -> list[dict[str, Any]]:
    """Every point of a grid study, in a stable order (the first parameter varies slowest)."""
    assert study.grid is not None
    grid = study.grid(budget)
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
