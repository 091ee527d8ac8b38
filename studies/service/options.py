"""A study run's options, declared once and checked: everything that can be validated before the
storage is touched or Ray is started, so that bad input is one line and loses nothing.

Each StudyOptions field carries its command-line flag (type, help, --help section), and
studies/cli/run.py builds its parser from them. The range of a number given on its own
(--cpus-per-trial, --max-concurrent, --time-budget, ...) is checked by the flag's type, as the
command line is parsed (sidae.arguments.bounded); `validate`, what needs the studies, the
budgets or the trainer's config."""

from __future__ import annotations

import argparse
import ast
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from sidae.arguments import bounded, comma_separated
from sidae.config import DATASETS, DEVICES, MAX_SEED
from sidae.data import DataSplits, data_root
from sidae.errors import UserError
from sidae.fetch import fetch
from storage import artifact_dir_for, default_url, parse
from studies.analysis.claim import Design
from studies.service.budgets import BUDGETS, Budget, budget_for
from studies.service.catalogue import STUDIES, Study
from studies.service.trainable import TrialContext, trial_config

SCHEDULERS = ("asha", "none")
MAX_CONFIRM_SEEDS = 30


class StudyError(UserError, ValueError):
    """Bad study arguments; one line for the user."""


GROUPS = ("study", "budget overrides", "resources", "paths", "output")  # the --help sections, in order


@dataclass(frozen=True)
class Flag:
    """How a StudyOptions field is given on the command line. studies/cli/run.py builds the parser
    from these, so each option is declared once: its name, default and type here, beside its
    help, with the group it belongs to."""

    group: str
    help: str
    type: Callable[[str], Any] | None = None
    flag: str | None = None  # default: --field-name
    action: str | type[argparse.Action] | None = None
    metavar: str | None = None


def option(default: Any = None, *, factory: Callable[[], Any] | None = None, **flag: Any) -> Any:
    """A StudyOptions field with its command-line flag."""
    if factory is not None:
        return field(default_factory=factory, metadata={"flag": Flag(**flag)})
    return field(default=default, metadata={"flag": Flag(**flag)})


def _assignment(text: str) -> tuple[str, object]:
    """--set KEY=VALUE: VALUE is a Python literal (0.5, True, 'mask') or else a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. w=0.9 or noise.kind=mask), got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


class _Assign(argparse.Action):
    """Each --set KEY=VALUE into one dict (a later KEY wins)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, value: Any, option_string: Any = None) -> None:
        key, field_value = value
        setattr(namespace, self.dest, {**getattr(namespace, self.dest), key: field_value})


_positive_float = bounded(float, above=0)


def _minutes(text: str) -> float:
    """--time-budget is given in minutes; the option holds seconds."""
    return 60 * _positive_float(text)


_minutes.__name__ = "float"  # argparse names the type in "invalid float value: ..."


@dataclass(frozen=True)
class StudyOptions:
    """One run of a study, as `studies/run.py` takes it: each field is one command-line option
    (its Flag), grouped by what it is for; `command` alone is not one."""

    # the study: what runs, on what, under which name
    study: str = field(metadata={"flag": Flag("study", f"which study: {', '.join(STUDIES)}")})
    dataset: str = option("mnist", group="study", help=f"{', '.join(DATASETS)} (default mnist)")
    budget: str = option(
        "cpu", group="study", help=f"{', '.join(BUDGETS)} (default cpu: a w-sweep takes about 45 min on 2 cores)"
    )
    name: str | None = option(group="study", help="study name in the storage (default <study>-<dataset>)")
    # budget overrides: what each trial runs
    epochs: int | None = option(group="budget overrides", type=int, help="pre-training epochs per trial, >= 1")
    train_limit: int | None = option(group="budget overrides", type=int, help="pre-training images per trial, >= 1")
    trials: int | None = option(group="budget overrides", type=int, help="trials of a sampled (non-grid) study, >= 1")
    w_grid: tuple[float, ...] | None = option(
        group="budget overrides", type=comma_separated(float), help="w values of a w-sweep, e.g. 0,0.5,0.9,1"
    )
    seeds: tuple[int, ...] | None = option(
        group="budget overrides",
        type=comma_separated(bounded(int, minimum=0, maximum=MAX_SEED)),
        help="seeds each grid point is repeated with, 0 to 2**32 - 1, e.g. 0,1,2",
    )
    fixed: dict[str, Any] = option(  # dotted config path -> value
        factory=dict,
        group="budget overrides",
        flag="--set",
        type=_assignment,
        action=_Assign,
        metavar="KEY=VALUE",
        help="fix a config field the study does not search, for every trial, e.g. --set w=0.9 --set noise.kind=mask "
        "(dotted paths of sidae.config.SidAEConfig)",
    )
    primary_fraction: float | None = option(
        group="budget overrides",
        type=bounded(float, above=0, maximum=1),
        help="label fraction in (0, 1] whose validation linear-probe accuracy is the objective (default: the "
        "budget's, 0.01; 0.1 for 32x32 RGB at the cpu budget)",
    )
    until_decided: int | None = option(
        group="budget overrides",
        type=int,
        metavar="SEEDS",
        help="confirmatory w-sweep: confirm the chosen w on up to SEEDS fresh seeds (2-30), looked at "
        "after 4, then every 2 (alpha spent O'Brien-Fleming-style), stopping at the first look that "
        "decides; default: the budget's looks (cpu: 4 and 6)",
    )
    # resources: where and how trials run
    address: str | None = option(group="resources", help="Ray cluster HOST:PORT (default: start Ray on this machine)")
    cpus_per_trial: float = option(
        1.0, group="resources", type=bounded(float, above=0), help="CPUs per trial, > 0, fractions allowed (default 1)"
    )
    gpus_per_trial: float = option(
        0.0, group="resources", type=bounded(float, minimum=0), help="GPUs per trial, >= 0, e.g. 0.5 (default 0)"
    )
    device: str = option("auto", group="resources", help=f"{DEVICES} (default auto)")
    max_concurrent: int | None = option(
        group="resources",
        type=bounded(int, minimum=1),
        help="trials at once, >= 1 (default: as many as resources allow)",
    )
    scheduler: str | None = option(
        group="resources", help=f"early stopping: {', '.join(SCHEDULERS)} (default: the study's)"
    )
    time_budget_s: float | None = option(
        group="resources",
        flag="--time-budget",
        type=_minutes,
        metavar="MINUTES",
        help="stop the study after this many minutes (> 0); cut and unstarted trials end PRUNED "
        "(stopped_by time-budget) and run at the next start",
    )
    min_collapse_std: float = option(
        0.0,
        group="resources",
        # the indicator (a mean std of unit vectors' coordinates) is at most about 1/sqrt(dim):
        # a threshold above 1 would prune every trial
        type=bounded(float, minimum=0, maximum=1),
        help="prune trials whose collapse indicator (std of l2-normalised features, ~1/sqrt(dim) "
        "when healthy) drops below this, in [0, 1] (default 0: off)",
    )
    trial_retries: int = option(
        1,
        group="resources",
        type=bounded(int, minimum=0),  # Ray Tune reads a negative max_failures as "retry forever"
        help="restarts of a crashed trial, from its last epoch's checkpoint, >= 0 (default 1)",
    )
    max_retries: int = option(
        1,
        group="resources",
        type=bounded(int, minimum=0),  # a negative one would leave every grid point out, and say "done"
        help="retries, at the next run of the study, of a grid point that failed, >= 0 (default 1)",
    )
    seed: int = option(
        0,
        group="resources",
        type=bounded(int, minimum=0, maximum=MAX_SEED),
        help="the sampler's seed, 0 to 2**32 - 1 (default 0)",
    )
    # paths: where things are read and written
    storage: str | None = option(
        group="paths",
        help="sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB, the password in "
        "PGPASSWORD or a PGPASSFILE, not in the URL: Ray keeps the URL in its "
        "saved state (default: studies.db in the current folder)",
    )
    artifact_dir: str | None = option(
        group="paths", help="where grids and checkpoints go (default: beside the SQLite file)"
    )
    data_dir: str | None = option(group="paths", help="data sets folder (default $SIDAE_DATA_DIR, else ./data)")
    ray_dir: str | None = option(group="paths", help="Ray Tune's experiment folder (default runs/ray)")
    # output
    progress: bool = option(
        True,
        group="output",
        flag="--quiet",
        action="store_false",
        help="no progress bar, and no expected time (which times a few steps of each kind of trial first)",
    )
    command: str = ""  # how the user started it, stored on the study

    @property
    def study_name(self) -> str:
        return self.name or f"{self.study}-{self.dataset}"

    @property
    def storage_url(self) -> str:
        return self.storage or default_url()

    @property
    def artifact_root(self) -> Path:
        return artifact_dir_for(self.storage_url, self.artifact_dir)


def resolve_budget(opts: StudyOptions) -> Budget:
    """The named budget with the user's --epochs, --train-limit, --trials, --w-grid, --seeds,
    --primary-fraction."""
    if opts.budget not in BUDGETS:
        raise StudyError(f"unknown budget {opts.budget!r}; choose from {', '.join(BUDGETS)}")
    counts = {
        k: v
        for k, v in (("epochs", opts.epochs), ("train_limit", opts.train_limit), ("trials", opts.trials))
        if v is not None
    }
    named = {} if opts.primary_fraction is None else {"primary_fraction": opts.primary_fraction}
    for key, value in counts.items():
        if value <= 0:
            raise StudyError(f"--{key.replace('_', '-')} must be positive, got {value}")
    if opts.w_grid is not None and not all(0.0 <= w <= 1.0 for w in opts.w_grid):
        raise StudyError(f"--w-grid values must be in [0, 1], got {','.join(map(str, opts.w_grid))}")
    if opts.seeds is not None and not all(0 <= seed <= MAX_SEED for seed in opts.seeds):
        raise StudyError(f"--seeds must be 0 to 2**32 - 1, got {','.join(map(str, opts.seeds))}")
    grids = {k: tuple(dict.fromkeys(v)) for k, v in (("w_grid", opts.w_grid), ("seeds", opts.seeds)) if v}
    return dataclasses.replace(budget_for(opts.budget, opts.dataset), **counts, **grids, **named).with_config(
        opts.fixed
    )


def validate(opts: StudyOptions) -> tuple[Study, Budget, TrialContext, DataSplits]:
    """Everything that can be checked without touching the storage or Ray, the data last (read
    once here, downloaded if missing: the workers read with downloads off); the study, its
    budget sized to the data (Budget.sized_for, unless --epochs names the epochs), the context
    every trial gets and the data."""
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
    parse(opts.storage_url)  # a malformed URL fails here, before anything is read or written
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
    # ConfigError unless the budget and --set values make a valid config
    data_config = trial_config({}, _context(opts, budget)).data
    _check_cuda(opts)
    data = fetch(data_config)
    if opts.epochs is None and "optim.epochs" not in opts.fixed:
        budget = budget.sized_for(len(data.pretrain))
    return study, budget, _context(opts, budget), data


def _context(opts: StudyOptions, budget: Budget) -> TrialContext:
    return TrialContext(
        dataset=opts.dataset,
        budget=budget,
        data_dir=str(data_root(opts.data_dir).resolve()),
        run_root=str(opts.artifact_root / "runs" / opts.study_name),
        threads=max(1, int(opts.cpus_per_trial)),
        device=opts.device,
        fixed=dict(opts.fixed),
        pilot_seeds=design.pilot_seeds if (design := design_for(opts, budget)) is not None else (),
    )


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
    return Design(budget.w_grid, budget.seeds, tuple(fresh), looks, budget.primary_fraction)


def _searched_params(study: Study, budget: Budget, dataset: str) -> set[str]:
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = probe.ask()
    study.space(trial, budget, dataset)
    return set(trial.params)
