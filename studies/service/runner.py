"""Run a named study: validate, reconcile the storage, schedule trials with Ray Tune, summarise.

Order matters for "bad input loses nothing": every argument, the data and the storage URL are
checked before the study is created or Ray is started.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import upload_artifact

from sidae.checkpoint import write_atomic
from sidae.fetch import fetch
from storage import artifact_dir_for, default_url, make_artifact_store, make_storage, parse, redact
from studies.service import lease
from studies.service.budgets import Budget
from studies.service.catalogue import Study, grid_points
from studies.service.notes import save_study_note
from studies.service.options import StudyError, StudyOptions, validate
from studies.service.reconcile import plan
from studies.service.trainable import TrialContext, trial_config
from studies.service.tuning import RAY_AUTH_VARS, init_ray, private_ray_token, tune_trials


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
                init_ray(opts)
                pending = baseline.submit(seeds, ctx, opts.cpus_per_trial, opts.gpus_per_trial)
                if to_run > 0:
                    tune_trials(opts, study, budget, ctx, storage, artifact_store, to_run)
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


def _until_decided(
    opts: StudyOptions,
    study: Study,
    budget: Budget,
    ctx: TrialContext,
    storage: optuna.storages.BaseStorage,
    artifact_store: Any,
    optuna_study: optuna.Study,
    started: float,
) -> None:
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
        init_ray(opts)
        pending = baseline.submit(
            baseline.missing_seeds(optuna_study, ctx, points), ctx, opts.cpus_per_trial, opts.gpus_per_trial
        )
        tune_trials(opts, study, budget, ctx, storage, artifact_store, to_run)
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
        print(
            f"warning: trial {best.number}'s run_dir is outside {run_root}; its weights are not stored", file=sys.stderr
        )
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
    optuna_study = optuna.create_study(
        study_name=opts.study_name, storage=storage, direction="maximize", load_if_exists=True
    )
    identity = {"study": study.name, "dataset": opts.dataset}
    held = {k: optuna_study.user_attrs.get(k) for k in identity}
    if all(v is None for v in held.values()):
        for key, value in {**identity, "budget": budget.name, "command": opts.command}.items():
            optuna_study.set_user_attr(key, value)
        # what it searches, data, budget, command: shown on the study's page in optuna-dashboard
        save_study_note(optuna_study, study, budget, opts.dataset, opts.primary_fraction, opts.command)
    elif held != identity:
        raise StudyError(
            f"study name {opts.study_name!r} already holds a {held['study']} on {held['dataset']}; "
            "choose another --name"
        )
    return optuna_study


def _print_header(opts: StudyOptions, url: str, artifact_root: Path, budget: Budget, to_run: int) -> None:
    print(
        f"study {opts.study_name} ({opts.study} on {opts.dataset}, budget {budget.name}: {budget.epochs} epochs, "
        f"{budget.train_limit or 'all'} pre-training images)",
        file=sys.stderr,
    )
    print(f"storage {redact(url)}; artifacts {artifact_root}", file=sys.stderr)
    print(
        f"{to_run} trial(s) to run" if to_run else "nothing left to run: every trial of this study is done",
        file=sys.stderr,
    )


def dashboard_command(url: str, artifact_dir: str | None) -> str:
    """How to browse this study (the password, if any, left for the user to fill in)."""
    command = ["python", "studies/dashboard.py", "--storage", redact(url)]
    return shlex.join(command + (["--artifact-dir", artifact_dir] if artifact_dir else []))
