"""The Ray side of a study run: the local Ray a driver starts (with its private token), the
scheduler, and one Ray Tune experiment whose trials the searcher records in Optuna."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from studies.record import BY_INTERRUPTION, BY_TIME_BUDGET, CURVE, STEP
from studies.service.budgets import Budget
from studies.service.catalogue import Study
from studies.service.options import StudyOptions
from studies.service.study_run import StudyRun
from studies.service.trainable import train_trial

if TYPE_CHECKING:
    from studies.service.baseline import SeedTasks


def _scheduler(opts: StudyOptions, study: Study, budget: Budget) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if (opts.scheduler or study.scheduler) == "none" or budget.epochs < 2:
        return FIFOScheduler()
    # Rungs at grace, grace*3, ...: a third of the trials survive each rung.
    return ASHAScheduler(
        time_attr=STEP,
        metric=CURVE,
        mode="max",
        max_t=budget.epochs,
        grace_period=max(1, budget.epochs // 9),
        reduction_factor=3,
    )


def init_ray(opts: StudyOptions) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(
            address=opts.address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )


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


def tune_trials(run: StudyRun, to_run: int, seed_tasks: SeedTasks | None = None) -> None:
    """Run `to_run` trials within what is left of the run's time budget, the searcher recording
    each in the Optuna study; `seed_tasks` (the baseline and controls running beside them) are
    stored as they end and counted in the progress line."""
    from ray import tune

    from studies.service.baseline import StoreFinished
    from studies.service.progress import StudyProgress
    from studies.service.search import StudySearch, StudyStopper, TrialIndex

    opts, study, budget = run.opts, run.study, run.budget
    time_budget_s = run.time_left()
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # with verbose=0 Tune prints nothing; our progress bar reports
    index = TrialIndex()
    sampled = optuna.load_study(
        study_name=opts.study_name, storage=run.storage, sampler=study.sampler(budget, opts.seed)
    )
    search = StudySearch(
        sampled,
        partial(study.space, budget=budget, dataset=opts.dataset),
        artifact_store=run.artifact_store,
        index=index,
        run_root=Path(run.ctx.run_root),
        time_budget_s=time_budget_s,
    )
    progress = StudyProgress(search, total=to_run, enabled=opts.progress, seed_tasks=seed_tasks)
    stored = [StoreFinished(seed_tasks)] if seed_tasks is not None else []
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, ctx=run.ctx), {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search,
            scheduler=_scheduler(opts, study, budget),
            num_samples=to_run,
            max_concurrent_trials=concurrency(opts),
            reuse_actors=True,
            time_budget_s=time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=opts.study_name,
            storage_path=str(_ray_dir(opts)),
            verbose=0,
            callbacks=[index, *stored, progress],
            failure_config=tune.FailureConfig(max_failures=opts.trial_retries),
            stop=StudyStopper(search, opts.min_collapse_std),
        ),
    )
    try:
        tuner.fit()
    except BaseException:
        # Whatever ended the run (a lost lease, a storage error, Ctrl-C), its unfinished trials
        # must not stay RUNNING. Best effort: the storage may be what failed (the lease's fence
        # refuses writes once another driver holds the study), and then the next start finds
        # them RUNNING and ends them itself; the error to report is the original one.
        with contextlib.suppress(Exception):
            search.end_unfinished(BY_INTERRUPTION)
        raise
    if search.failure is not None:
        # The storage failed or the lease was lost while recording: no further write is tried
        # (each could wait out the storage's patience again). The next start finds this run's
        # trials RUNNING and ends them itself, as it does a killed driver's.
        raise search.failure
    search.end_unfinished(BY_TIME_BUDGET)


def concurrency(opts: StudyOptions) -> int:
    """Trials at once: --max-concurrent, else as many as the cluster's CPUs (and GPUs) allow."""
    import ray

    if opts.max_concurrent:
        return opts.max_concurrent
    resources = ray.cluster_resources()
    slots = resources.get("CPU", 1) / opts.cpus_per_trial
    if opts.gpus_per_trial > 0:
        slots = min(slots, resources.get("GPU", 0) / opts.gpus_per_trial)
    return max(1, int(slots))


def _ray_dir(opts: StudyOptions) -> Path:
    return Path(opts.ray_dir or Path.cwd() / "runs" / "ray").resolve()
