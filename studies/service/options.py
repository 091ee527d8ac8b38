"""A study run's options, checked: everything that can be validated before the storage is
touched or Ray is started, so that bad input is one line and loses nothing.

The range of a number given on its own (--cpus-per-trial, --max-concurrent, --time-budget,
--max-retries, ...) is checked where the command line is parsed (studies/cli/run.py, with
sidae.arguments.bounded); here what needs the studies, the budgets or the trainer's config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch

from sidae.config import DATASETS, MAX_SEED
from sidae.data import data_root
from sidae.errors import UserError
from studies.analysis.claim import Design
from studies.service.budgets import BUDGETS, Budget, budget_for
from studies.service.catalogue import STUDIES, Study
from studies.service.trainable import TrialContext, trial_config

SCHEDULERS = ("asha", "none")
MAX_CONFIRM_SEEDS = 30


class StudyError(UserError, ValueError):
    """Bad study arguments; one line for the user."""


@dataclass(frozen=True)
class StudyOptions:
    study: str
    dataset: str = "mnist"
    budget: str = "cpu"
    name: str | None = None  # default <study>-<dataset>
    storage: str | None = None  # default: studies.db in the current folder
    artifact_dir: str | None = None
    data_dir: str | None = None
    epochs: int | None = None
    train_limit: int | None = None
    trials: int | None = None
    w_grid: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None
    fixed: dict[str, Any] = field(default_factory=dict)  # dotted config path -> value
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None  # Ray cluster HOST:PORT; None starts Ray locally
    scheduler: str | None = None  # None: the study's default
    max_concurrent: int | None = None
    primary_fraction: float = 0.01
    seed: int = 0  # the sampler's seed
    time_budget_s: float | None = None
    max_retries: int = 1  # next-run retries of a grid point that failed
    trial_retries: int = 1  # in-run restarts of a crashed trial (Ray), from its last checkpoint
    min_collapse_std: float = 0.0  # stop (prune) trials whose features collapsed below this
    ray_dir: str | None = None
    device: str = "auto"
    progress: bool = True
    command: str = ""  # how the user started it, stored on the study
    until_decided: int | None = None  # confirmatory w-sweep: up to this many fresh seeds, looked at every two

    @property
    def study_name(self) -> str:
        return self.name or f"{self.study}-{self.dataset}"


def resolve_budget(opts: StudyOptions) -> Budget:
    """The named budget with the user's --epochs, --train-limit, --trials, --w-grid, --seeds."""
    if opts.budget not in BUDGETS:
        raise StudyError(f"unknown budget {opts.budget!r}; choose from {', '.join(BUDGETS)}")
    counts = {
        k: v
        for k, v in (("epochs", opts.epochs), ("train_limit", opts.train_limit), ("trials", opts.trials))
        if v is not None
    }
    for key, value in counts.items():
        if value <= 0:
            raise StudyError(f"--{key.replace('_', '-')} must be positive, got {value}")
    if opts.w_grid is not None and not all(0.0 <= w <= 1.0 for w in opts.w_grid):
        raise StudyError(f"--w-grid values must be in [0, 1], got {','.join(map(str, opts.w_grid))}")
    if opts.seeds is not None and not all(0 <= seed <= MAX_SEED for seed in opts.seeds):
        raise StudyError(f"--seeds must be 0 to 2**32 - 1, got {','.join(map(str, opts.seeds))}")
    grids = {k: tuple(dict.fromkeys(v)) for k, v in (("w_grid", opts.w_grid), ("seeds", opts.seeds)) if v}
    return dataclasses.replace(budget_for(opts.budget, opts.dataset), **counts, **grids).with_config(opts.fixed)


def validate(opts: StudyOptions) -> tuple[Study, Budget, TrialContext]:
    """Everything that can be checked without touching the storage or Ray."""
    if opts.study not in STUDIES:
        raise StudyError(f"unknown study {opts.study!r}; choose from {', '.join(STUDIES)} (see --list)")
    if opts.dataset not in DATASETS:
        raise StudyError(f"unknown dataset {opts.dataset!r}; choose from {', '.join(DATASETS)}")
    if opts.scheduler is not None and opts.scheduler not in SCHEDULERS:
        raise StudyError(f"unknown scheduler {opts.scheduler!r}; choose from {', '.join(SCHEDULERS)}")
    for key, flag in (("data.dataset", "--dataset"), ("data.data_dir", "--data-dir")):
        if key in opts.fixed:
            raise StudyError(f"--set {key} would silently override {flag}; use {flag}")
    study, budget = STUDIES[opts.study], resolve_budget(opts)
    ctx = TrialContext(
        dataset=opts.dataset,
        budget=budget,
        data_dir=str(data_root(opts.data_dir).resolve()),
        run_root="",
        primary_fraction=opts.primary_fraction,
        threads=max(1, int(opts.cpus_per_trial)),
        device=opts.device,
        fixed=dict(opts.fixed),
    )
    searched = _searched_params(study, budget, opts.dataset)
    clash = sorted(set(opts.fixed) & searched)
    if clash:
        raise StudyError(f"--set {clash[0]} clashes with a parameter that study {study.name} searches")
    if opts.until_decided is not None:
        if study.name != "w-sweep" or opts.w_grid is not None or opts.seeds is not None:
            raise StudyError(
                "--until-decided sets the fresh seeds of a confirmatory w-sweep; a sweep whose points are "
                "named (--w-grid, --seeds) is descriptive and has none"
            )
        if not 2 <= opts.until_decided <= MAX_CONFIRM_SEEDS:
            raise StudyError(f"--until-decided must be 2 to {MAX_CONFIRM_SEEDS} fresh seeds, got {opts.until_decided}")
    trial_config({}, ctx)  # ConfigError unless the budget and --set values make a valid config
    _check_cuda(opts)
    return study, budget, ctx


def _check_cuda(opts: StudyOptions) -> None:
    """A trial on CUDA must reserve its GPU share (else trials crowd onto a GPU Ray does not count,
    as many as the CPUs allow), and a driver starting its own Ray must have a GPU to give."""
    if not opts.device.startswith("cuda"):
        return
    if opts.gpus_per_trial <= 0:
        raise StudyError(f"--device {opts.device} needs --gpus-per-trial > 0 (1, or e.g. 0.5 to share a GPU)")
    if opts.address is None and not torch.cuda.is_available():
        raise StudyError(
            f"--device {opts.device}: torch sees no CUDA device on this machine; use --device auto or cpu, "
            "or --address a Ray cluster whose workers have GPUs"
        )


def looks_until(seeds: int, first: int = 4) -> tuple[int, ...]:
    """--until-decided's looks: at `first` fresh seeds, then every two, and at `seeds`."""
    return (*range(min(first, seeds), seeds, 2), seeds)


def design_for(opts: StudyOptions, budget: Budget) -> Design | None:
    """The confirmatory design of a w-sweep on its budget's grid and seeds; None (a descriptive
    sweep) for other studies and where the user named the points (--w-grid, --seeds)."""
    if opts.study != "w-sweep" or opts.w_grid is not None or opts.seeds is not None or not budget.looks:
        return None
    looks = budget.looks if opts.until_decided is None else looks_until(opts.until_decided)
    fresh = range(max(budget.seeds) + 1, max(budget.seeds) + 1 + looks[-1])
    return Design(budget.w_grid, budget.seeds, tuple(fresh), looks, opts.primary_fraction)


def _searched_params(study: Study, budget: Budget, dataset: str) -> set[str]:
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = probe.ask()
    study.space(trial, budget, dataset)
    return set(trial.params)
