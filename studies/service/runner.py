"""Run a named study: validate, reconcile the storage, schedule trials with Ray Tune, summarise.

Order matters for "bad input loses nothing": every argument, the data and the storage URL are
checked before the study is created or Ray is started.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import upload_artifact

from sidae.checkpoint import write_atomic
from sidae.config import DATASETS, ConfigError
from sidae.data import data_root
from sidae.fetch import fetch
from storage import artifact_dir_for, default_url, make_artifact_store, make_storage, parse, redact
from studies.record import COLLAPSE, CURVE, STEP
from studies.service import lease
from studies.service.budgets import BUDGETS, Budget, budget_for
from studies.service.catalogue import STUDIES, Study, grid_points
from studies.service.notes import save_study_note
from studies.service.reconcile import plan
from studies.service.trainable import TrialContext, train_trial, trial_config

SCHEDULERS = ("asha", "none")


class StudyError(ValueError):
    """Bad study arguments; one line for the user."""


@dataclass(frozen=True)
class StudyOptions:
    study: str
    dataset: str = "mnist"
    budget: str = "cpu"
    name: str | None = None  # default <study>-<dataset>
    storage: str | None = None  # default: SQLite file in the project folder
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
    until_decided: int | None = None  # w-sweep: seeds in all; past the first round only where a comparison is open

    @property
    def study_name(self) -> str:
        return self.name or f"{self.study}-{self.dataset}"


def resolve_budget(opts: StudyOptions) -> Budget:
    """The named budget with the user's --epochs, --train-limit, --trials, --w-grid, --seeds."""
    if opts.budget not in BUDGETS:
        raise StudyError(f"unknown budget {opts.budget!r}; choose from {', '.join(BUDGETS)}")
    counts = {k: v for k, v in (("epochs", opts.epochs), ("train_limit", opts.train_limit),
                                ("trials", opts.trials)) if v is not None}
    for key, value in counts.items():
        if value <= 0:
            raise StudyError(f"--{key.replace('_', '-')} must be positive, got {value}")
    if opts.w_grid is not None and not all(0.0 <= w <= 1.0 for w in opts.w_grid):
        raise StudyError(f"--w-grid values must be in [0, 1], got {','.join(map(str, opts.w_grid))}")
    if opts.seeds is not None and not all(0 <= seed < 2**31 for seed in opts.seeds):
        raise StudyError(f"--seeds must be in [0, 2**31), got {','.join(map(str, opts.seeds))}")
    grids = {k: tuple(dict.fromkeys(v)) for k, v in (("w_grid", opts.w_grid), ("seeds", opts.seeds)) if v}
    return dataclasses.replace(budget_for(opts.budget, opts.dataset), **counts, **grids)


def validate(opts: StudyOptions) -> tuple[Study, Budget, TrialContext]:
    """Everything that can be checked without touching the storage or Ray."""
    if opts.study not in STUDIES:
        raise StudyError(f"unknown study {opts.study!r}; choose from {', '.join(STUDIES)} (see --list)")
    if opts.dataset not in DATASETS:
        raise StudyError(f"unknown dataset {opts.dataset!r}; choose from {', '.join(DATASETS)}")
    if opts.scheduler is not None and opts.scheduler not in SCHEDULERS:
        raise StudyError(f"unknown scheduler {opts.scheduler!r}; choose from {', '.join(SCHEDULERS)}")
    if opts.cpus_per_trial <= 0 or opts.gpus_per_trial < 0:
        raise StudyError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    for key, flag in (("data.dataset", "--dataset"), ("data.data_dir", "--data-dir")):
        if key in opts.fixed:
            raise StudyError(f"--set {key} would silently override {flag}; use {flag}")
    study, budget = STUDIES[opts.study], resolve_budget(opts)
    ctx = TrialContext(dataset=opts.dataset, budget=budget, data_dir=str(data_root(opts.data_dir).resolve()),
                       run_root="", primary_fraction=opts.primary_fraction,
                       threads=max(1, int(opts.cpus_per_trial)), device=opts.device, fixed=dict(opts.fixed))
    searched = _searched_params(study, budget, opts.dataset)
    clash = sorted(set(opts.fixed) & searched)
    if clash:
        raise StudyError(f"--set {clash[0]} clashes with a parameter that study {study.name} searches")
    if opts.until_decided is not None and (study.name != "w-sweep" or opts.until_decided < len(budget.seeds)):
        raise StudyError(f"--until-decided is a w-sweep's seed budget, at least its first round of {len(budget.seeds)} "
                         f"seeds (--seeds), got {opts.study} with {opts.until_decided}")
    try:
        trial_config({}, ctx)  # the budget and --set values make a valid config
    except ConfigError as error:
        raise StudyError(str(error)) from None
    return study, budget, ctx


def _searched_params(study: Study, budget: Budget, dataset: str) -> set[str]:
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = probe.ask()
    study.space(trial, budget, dataset)
    return set(trial.params)


def run_study(opts: StudyOptions) -> optuna.Study:
    """Run (or resume) the study and return it."""
    study, budget, ctx = validate(opts)
    url = opts.storage or default_url()
    parse(url)  # a malformed URL fails here, before anything is read or written
    fetch(trial_config({}, ctx).data)  # downloaded here, once, if missing: the workers read with downloads off
    storage = make_storage(url)  # StorageError for an unreachable or unusable database; creates nothing then
    artifact_root = artifact_dir_for(url, opts.artifact_dir)
    artifact_store = make_artifact_store(artifact_root)
    ctx = dataclasses.replace(ctx, run_root=str(artifact_root / "runs" / opts.study_name))
    points = grid_points(study, budget) if study.grid is not None else None
    if opts.address is None and not any(k in os.environ for k in RAY_AUTH_VARS):
        os.environ.update(private_ray_token())  # before Ray is imported: it reads them once
    from studies.service import baseline  # imports Ray: only once the input is known to be good

    # StudyBusy if another live driver runs this study; every write below is fenced by the lease,
    # the study's creation and note included
    with lease.held(storage, opts.study_name) as study_lease:
        try:
            optuna_study = _open_study(opts, study, budget, storage)
            to_run = plan(optuna_study, storage, points, budget.trials, opts.max_retries)
            _print_header(opts, url, artifact_root, budget, to_run)
            seeds = baseline.missing_seeds(optuna_study, ctx, points if points is not None else [{}])
            started = time.monotonic()
            if to_run > 0 or seeds:
                _init_ray(opts)
                pending = baseline.submit(seeds, ctx, opts.cpus_per_trial, opts.gpus_per_trial)
                if to_run > 0:
                    _tune(opts, study, budget, ctx, storage, artifact_store, to_run)
                in_time = opts.time_budget_s is None or time.monotonic() - started < opts.time_budget_s
                baseline.record(optuna_study, pending, wait=in_time)
            if opts.until_decided is not None:
                _until_decided(opts, study, budget, ctx, storage, artifact_store, optuna_study, started)
            store_best_model(optuna_study, artifact_store, Path(ctx.run_root))
        except Exception:
            study_lease.check()  # a lost lease is the cause (Ray Tune wraps it): say that, in one line
            raise
    return optuna_study


def adaptive_seeds(budget: Budget, total: int) -> tuple[int, ...]:
    """--until-decided's seed budget: the first round's seeds, then the next integers."""
    extra = (s for s in itertools.count(max(budget.seeds) + 1) if s not in budget.seeds)
    return (*budget.seeds, *itertools.islice(extra, total - len(budget.seeds)))


def _until_decided(opts: StudyOptions, study: Study, budget: Budget, ctx: TrialContext,
                   storage: optuna.storages.BaseStorage, artifact_store: Any, optuna_study: optuna.Study,
                   started: float) -> None:
    """After the first round: a seed at a time, only at the grid points of open comparisons
    (studies/analysis/adaptive.py), until decided, the seed budget is spent, the points keep
    failing, or the time budget is over. The plan is read from the stored trials, so a rerun
    resumes where this one stopped."""
    from studies.analysis import adaptive
    from studies.analysis.claim import EVALUATIONS
    from studies.service import baseline

    seeds = adaptive_seeds(budget, opts.until_decided or 0)
    optuna_study.set_user_attr(adaptive.ADAPTIVE_ATTR, {"seeds": list(seeds), "w_grid": list(budget.w_grid)})
    while opts.time_budget_s is None or time.monotonic() - started < opts.time_budget_s:
        complete = optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        next_points = adaptive.plan(complete, EVALUATIONS, budget.w_grid, seeds).next_points
        points = [{"seed": s, "w": w} for s, w in next_points]
        to_run = plan(optuna_study, storage, points, 0, opts.max_retries)
        if to_run == 0:
            return
        _init_ray(opts)
        pending = baseline.submit(baseline.missing_seeds(optuna_study, ctx, points), ctx, opts.cpus_per_trial,
                                  opts.gpus_per_trial)
        _tune(opts, study, budget, ctx, storage, artifact_store, to_run)
        baseline.record(optuna_study, pending, wait=True)


def store_best_model(study: optuna.Study, artifact_store: Any, run_root: Path) -> None:
    """The best trial's weights as a study artifact (each time the best trial changes).

    The folder comes from the database (the trial's `run_dir`), which others can write: only a
    folder inside this study's own run folder is read from."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return
    best = max(complete, key=lambda t: t.value)
    weights = (Path(best.user_attrs.get("run_dir", "")) / "model.pt").resolve()
    if study.user_attrs.get("best_model_trial") == best.number or not weights.is_file():
        return
    if not weights.is_relative_to(run_root.resolve()):
        print(f"warning: trial {best.number}'s run_dir is outside {run_root}; its weights are not stored",
              file=sys.stderr)
        return
    named = weights.with_name(f"best-trial-{best.number}-model.pt")  # the artifact's file name
    try:
        write_atomic(named, weights.read_bytes())
        upload_artifact(artifact_store=artifact_store, file_path=str(named), study_or_trial=study)
    except OSError as error:  # a full disk loses this copy, not the study: the next run tries again
        print(f"warning: could not store the best trial's weights ({error.strerror or error})", file=sys.stderr)
        return
    study.set_user_attr("best_model_trial", best.number)


def _open_study(opts: StudyOptions, study: Study, budget: Budget, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the study, or load it if this name exists and holds the same kind of study."""
    optuna_study = optuna.create_study(study_name=opts.study_name, storage=storage, direction="maximize",
                                       load_if_exists=True)
    identity = {"study": study.name, "dataset": opts.dataset}
    held = {k: optuna_study.user_attrs.get(k) for k in identity}
    if all(v is None for v in held.values()):
        for key, value in {**identity, "budget": budget.name, "command": opts.command}.items():
            optuna_study.set_user_attr(key, value)
        # what it searches, data, budget, command: shown on the study's page in optuna-dashboard
        save_study_note(optuna_study, study, budget, opts.dataset, opts.primary_fraction, opts.command)
    elif held != identity:
        raise StudyError(f"study name {opts.study_name!r} already holds a {held['study']} on {held['dataset']}; "
                         "choose another --name")
    return optuna_study


def _scheduler(opts: StudyOptions, study: Study, budget: Budget) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if (opts.scheduler or study.scheduler) == "none" or budget.epochs < 2:
        return FIFOScheduler()
    # Rungs at grace, grace*3, ...: a third of the trials survive each rung.
    return ASHAScheduler(time_attr=STEP, metric=CURVE, mode="max", max_t=budget.epochs,
                         grace_period=max(1, budget.epochs // 9), reduction_factor=3)


def _init_ray(opts: StudyOptions) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(address=opts.address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=True)


RAY_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def private_ray_token() -> dict[str, str]:
    """Token authentication, on explicitly, for the local Ray a driver starts: Ray 2.60's ports
    open on the machine's address whatever node IP is asked for, so the token is what keeps other
    users and machines out. Left to itself Ray keeps the token in ~/.ray/auth_token, readable by
    everyone where home folders are; this one is fresh, in a folder only this user can enter,
    removed when the driver exits."""
    folder = Path(tempfile.mkdtemp(prefix="sidae-ray-auth-"))  # mode 0700
    token = folder / "token"
    descriptor = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # after Ray's own exit handler
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def _tune(opts: StudyOptions, study: Study, budget: Budget, ctx: TrialContext,
          storage: optuna.storages.BaseStorage, artifact_store: Any, to_run: int) -> None:
    from ray import tune

    from studies.service.progress import StudyProgress
    from studies.service.search import StudySearch, TrialIndex

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # with verbose=0 Tune prints nothing; our progress bar reports
    index = TrialIndex()
    sampled = optuna.load_study(study_name=opts.study_name, storage=storage, sampler=study.sampler(budget, opts.seed))
    search = StudySearch(sampled, partial(study.space, budget=budget, dataset=opts.dataset),
                         artifact_store=artifact_store, index=index, time_budget_s=opts.time_budget_s)
    progress = StudyProgress(search, total=to_run, enabled=opts.progress)
    trainable = tune.with_resources(tune.with_parameters(train_trial, ctx=ctx),
                                    {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=search, scheduler=_scheduler(opts, study, budget), num_samples=to_run,
                                    max_concurrent_trials=opts.max_concurrent or _default_concurrency(opts),
                                    reuse_actors=True, time_budget_s=opts.time_budget_s),
        run_config=tune.RunConfig(name=opts.study_name, storage_path=str(_ray_dir(opts)), verbose=0,
                                  callbacks=[index, progress],
                                  failure_config=tune.FailureConfig(max_failures=opts.trial_retries),
                                  stop=collapse_stopper(opts.min_collapse_std) if opts.min_collapse_std > 0 else None),
    )
    tuner.fit()
    search.end_unfinished()


def collapse_stopper(threshold: float) -> Callable[[str, dict[str, Any]], bool]:
    """Stop a trial whose representation collapsed: the std of its l2-normalised validation
    features (about 1/sqrt(dim) when healthy, 0 when every image maps to one point) fell below
    `threshold`. Such a trial can only waste its remaining epochs; it ends PRUNED."""

    def stop(trial_id: str, result: dict[str, Any]) -> bool:
        return float(result.get(COLLAPSE, float("inf"))) < threshold

    return stop


def _default_concurrency(opts: StudyOptions) -> int:
    """As many trials at once as the cluster's CPUs (and GPUs) allow."""
    import ray

    resources = ray.cluster_resources()
    slots = resources.get("CPU", 1) / opts.cpus_per_trial
    if opts.gpus_per_trial > 0:
        slots = min(slots, resources.get("GPU", 0) / opts.gpus_per_trial)
    return max(1, int(slots))


def _ray_dir(opts: StudyOptions) -> Path:
    return Path(opts.ray_dir or Path.cwd() / "runs" / "ray").resolve()


def _print_header(opts: StudyOptions, url: str, artifact_root: Path, budget: Budget, to_run: int) -> None:
    print(f"study {opts.study_name} ({opts.study} on {opts.dataset}, budget {budget.name}: {budget.epochs} epochs, "
          f"{budget.train_limit or 'all'} pre-training images)", file=sys.stderr)
    print(f"storage {redact(url)}; artifacts {artifact_root}", file=sys.stderr)
    print(f"{to_run} trial(s) to run" if to_run else "nothing left to run: every trial of this study is done",
          file=sys.stderr)


def dashboard_command(url: str, artifact_dir: str | None) -> str:
    """How to browse this study (the password, if any, left for the user to fill in)."""
    command = ["python", "studies/dashboard.py", "--storage", redact(url)]
    return shlex.join(command + (["--artifact-dir", artifact_dir] if artifact_dir else []))
