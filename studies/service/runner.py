"""Run a named study: validate, reconcile the storage, schedule trials with Ray Tune, summarise.

Order matters for "bad input loses nothing": every argument, the data and the storage URL are
checked before the study is created or Ray is started.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from sidae.checkpoint import write_atomic
from sidae.data import DataSplits
from sidae.evaluate import describe_splits
from storage import make_artifact_store, make_storage, redact, store_file
from studies.analysis.claim import CHOSEN_ATTR, DESIGN_ATTR, Design, by_w_and_seed, chosen_w, primary_verdict
from studies.analysis.controls import control_scores
from studies.analysis.sequential import HOLDS, REVERSED
from studies.analysis.summary import complete_trials
from studies.service import lease
from studies.service.budgets import Budget
from studies.service.catalogue import Study, grid_points
from studies.service.estimate import Expected, bf16_hint, expected_lines, time_trials
from studies.service.identity import SETTINGS_ATTR, first_difference, study_settings
from studies.service.notes import About, name_objective, save_study_note
from studies.service.options import StudyError, StudyOptions, design_for, resolve_budget, validate
from studies.service.reconcile import queued, trials_to_start
from studies.service.study_run import StudyRun
from studies.service.trainable import TrialContext, trial_config
from studies.service.tuning import RAY_AUTH_VARS, concurrency, init_ray, private_ray_token, tune_trials

logger = logging.getLogger(__name__)


def run_study(opts: StudyOptions) -> optuna.Study:
    """Run (or resume) the study and return it."""
    study, budget, ctx, data = validate(opts)
    design = design_for(opts, budget)
    storage = make_storage(opts.storage_url)  # StorageError for an unreachable or unusable database; creates nothing
    artifact_store = make_artifact_store(opts.artifact_root)
    points = grid_points(study, budget) if study.grid is not None else None
    splits = describe_splits(data, trial_config({}, ctx).eval.label_fractions)
    expected = _timer(opts, ctx, data, points, design)
    del data  # the workers read their own copy; the timer keeps it until it has timed the steps
    if opts.address is None and not any(k in os.environ for k in RAY_AUTH_VARS):
        os.environ.update(private_ray_token())  # before Ray is imported: it reads them once

    # StudyBusy if another live driver runs this study; every write below is fenced by the lease,
    # the study's creation and note included
    with lease.holding(storage, opts.study_name) as study_lease:
        try:
            optuna_study = _open_study(opts, study, budget, ctx, storage, design)
            run = StudyRun(opts, study, budget, design, ctx, storage, artifact_store, optuna_study, expected)
            to_run = trials_to_start(optuna_study, storage, points, budget.trials, opts.max_retries)
            _print_header(run, to_run, splits)
            run_trials(run, points if points is not None else [{}], to_run)
            if design is not None:
                _confirm(run, design)
            store_best_model(optuna_study, artifact_store, Path(ctx.run_root))
        except Exception:
            study_lease.check()  # a lost lease is the cause (Ray Tune wraps it): say that, in one line
            raise
    return optuna_study


def run_trials(run: StudyRun, points: list[dict[str, Any]], to_run: int) -> None:
    """`to_run` trials, and beside them the supervised baseline of each seed of `points` that
    lacks one (waited for only while in time: else computed at the next start)."""
    from studies.service import baseline  # imports Ray: only once the input is known to be good

    seeds = baseline.missing_seeds(run.optuna_study, run.ctx, points)
    if to_run == 0 and not seeds:
        return
    init_ray(run.opts)
    expected = run.expected()
    if expected is not None:
        _print_expected(run, expected, points, to_run, len(seeds))
    seed_tasks = baseline.submit(run.optuna_study, seeds, run.ctx, run.opts.cpus_per_trial, run.opts.gpus_per_trial)
    if to_run > 0:
        tune_trials(run, to_run, seed_tasks)
    seed_tasks.finish(wait=run.in_time())
    save_study_note(run.optuna_study, about(run.opts, run.study, run.budget, run.design))


def _confirm(run: StudyRun, design: Design) -> None:
    """The confirmation stage: fix w on the pilot seeds (once: stored), then run it and both
    baselines on fresh seeds look by look until the primary verdict is decided or the last look
    is done. Everything is read from the stored trials, so a rerun resumes where this one
    stopped; a look whose points keep failing, or the time budget, ends the run early."""
    study = run.optuna_study
    if study.user_attrs.get(CHOSEN_ATTR) is None:
        w = chosen_w(by_w_and_seed(complete_trials(study)), design.pilot_seeds)
        if w is None:
            logger.warning("confirmation: not started, the pilot is not complete (rerun the command)")
            return
        study.set_user_attr(CHOSEN_ATTR, w)
        print(f"pilot chose w={w:g} on validation; confirming it on fresh seeds", file=sys.stderr, flush=True)
    w = float(study.user_attrs[CHOSEN_ATTR])
    for look in range(len(design.looks)):
        if not run.in_time():
            return
        points = design.look_points(w, look)
        run_trials(run, points, trials_to_start(study, run.storage, points, 0, run.opts.max_retries))
        verdict = primary_verdict(complete_trials(study), design, w, control_scores(study, "untrained"))
        if verdict is None or verdict.vs_dae.n < design.looks[look] or verdict.tested in (HOLDS, REVERSED):
            return


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
        logger.warning("trial %d's run_dir is outside %s; its weights are not stored", best.number, run_root)
        return
    named = weights.with_name(f"best-trial-{best.number}-model.pt")  # the artifact's file name
    try:
        write_atomic(named, weights.read_bytes())
        store_file(artifact_store, named, study)
    except OSError as error:  # a full disk loses this copy, not the study: the next run tries again
        logger.warning("could not store the best trial's weights (%s)", error.strerror or error)
        return
    study.set_user_attr("best_model_trial", best.number)


def about(opts: StudyOptions, study: Study, budget: Budget, design: Design | None) -> About:
    return About(study, budget, opts.dataset, opts.command, design)


def _open_study(
    opts: StudyOptions,
    study: Study,
    budget: Budget,
    ctx: TrialContext,
    storage: optuna.storages.BaseStorage,
    design: Design | None,
) -> optuna.Study:
    """Create the study, or load it if this name exists and holds the same kind of study with
    the same settings (studies.service.identity) and design (a confirmatory design is declared
    once, before any trial runs)."""
    optuna_study = optuna.create_study(
        study_name=opts.study_name, storage=storage, direction="maximize", load_if_exists=True
    )
    identity = {"study": study.name, "dataset": opts.dataset}
    held = {k: optuna_study.user_attrs.get(k) for k in identity}
    settings = study_settings(ctx)
    if all(v is None for v in held.values()):
        for key, value in {**identity, "budget": budget.name, "command": opts.command}.items():
            optuna_study.set_user_attr(key, value)
        optuna_study.set_user_attr(SETTINGS_ATTR, settings)
        if design is not None:
            optuna_study.set_user_attr(DESIGN_ATTR, design.to_attr())
        # what it searches, data, budget, design, command: shown on the study's page in optuna-dashboard
        save_study_note(optuna_study, about(opts, study, budget, design))
        name_objective(optuna_study, budget.primary_fraction)
        return optuna_study
    if held != identity:
        raise StudyError(
            f"study name {opts.study_name!r} already holds a {held['study']} on {held['dataset']}; "
            "choose another --name"
        )
    _check_settings(opts.study_name, optuna_study, budget, settings)
    if Design.from_attr(optuna_study.user_attrs.get(DESIGN_ATTR)) != design:
        raise StudyError(
            f"study name {opts.study_name!r} was started with another "
            + ("confirmatory design" if DESIGN_ATTR in optuna_study.user_attrs else "kind of sweep (descriptive)")
            + "; a design cannot change once declared: choose another --name"
        )
    return optuna_study


def _check_settings(name: str, optuna_study: optuna.Study, budget: Budget, settings: dict[str, Any]) -> None:
    """StudyError naming the first difference, and a --name that would not clash, when this
    run's budget or settings are not the stored study's: its trials would be mixed with them."""
    stored_budget = optuna_study.user_attrs.get("budget")
    if stored_budget is not None and stored_budget != budget.name:
        raise StudyError(
            f"study name {name!r} holds trials of budget {stored_budget} (this run: {budget.name}); "
            f"choose another --name, e.g. --name {name}-{budget.name}"
        )
    stored = optuna_study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:  # a study from before settings were stored: from now on they are checked
        optuna_study.set_user_attr("budget", budget.name)
        optuna_study.set_user_attr(SETTINGS_ATTR, settings)
        return
    differs = first_difference(stored, settings)
    if differs is not None:
        raise StudyError(
            f"study name {name!r} holds trials run with {differs}; "
            f"choose another --name, e.g. --name {name}-{differs.name_suffix}"
        )


def _timer(
    opts: StudyOptions, ctx: TrialContext, data: DataSplits, points: list[dict[str, Any]] | None, design: Design | None
) -> Callable[[], Expected | None]:
    """Each kind of trial's steps timed here, for the expected times, at the first call (the first
    round with work: not for a finished study, nor for a driver refused the lease), which then
    lets the data go; never with --quiet, which shows none."""
    if not opts.progress:
        return lambda: None
    ws = [_w_of(p, ctx) for p in points or [{}]] + ([0.0, 0.5, 1.0] if design is not None else [])
    held = [data]

    @functools.cache
    def expected() -> Expected:
        return time_trials(ctx, held.pop(), points or [], ws, design.confirm_seeds[0] if design is not None else None)

    return expected


def _w_of(point: dict[str, Any], ctx: TrialContext) -> float:
    return float(point["w"]) if "w" in point else trial_config({}, ctx).w


def _print_expected(
    run: StudyRun, expected: Expected, points: list[dict[str, Any]], to_run: int, seed_tasks: int
) -> None:
    """The round's expected time (the w of each trial that will run: the queued ones in order,
    then the points'; a pilot's or a confirmation's trials), and before a confirmatory w-sweep's
    pilot, the confirmation's."""
    upcoming = queued(run.optuna_study) + [points[i % len(points)] for i in range(to_run)]
    ws = [_w_of(point, run.ctx) for point in upcoming[:to_run]]
    pending = run.design is not None and run.optuna_study.user_attrs.get(CHOSEN_ATTR) is None
    looks = run.design.looks if run.design is not None and pending else ()
    if run.design is not None and not pending:  # a confirmation round: its trials fine-tune
        expected = expected.confirmation or expected
    for line in expected_lines(expected, ws, seed_tasks, concurrency(run.opts), looks):
        print(line, file=sys.stderr, flush=True)


def _print_header(run: StudyRun, to_run: int, splits: str) -> None:
    opts, budget = run.opts, run.budget
    print(
        f"study {opts.study_name} ({opts.study} on {opts.dataset}, budget {budget.name}: {_budget_line(run)})",
        file=sys.stderr,
    )
    print(splits, file=sys.stderr)
    if run.design is not None:
        lean = "; pilot trials do not fine-tune" if run.ctx.pilot_seeds and budget.finetune_steps else ""
        print(f"confirmatory design: {run.design.describe()}{lean}", file=sys.stderr)
    elif opts.study == "w-sweep":
        print("descriptive sweep (--w-grid or --seeds named its points): no confirmatory verdict", file=sys.stderr)
    print(f"storage {redact(opts.storage_url)}; artifacts {opts.artifact_root}", file=sys.stderr)
    print(
        f"{to_run} trial(s) to run" if to_run else "nothing left to run: every trial of this study is done",
        file=sys.stderr,
    )
    if to_run and opts.progress:  # once per command, not before each round
        for line in bf16_hint(trial_config({}, run.ctx), opts.gpus_per_trial):
            print(line, file=sys.stderr)


def _budget_line(run: StudyRun) -> str:
    """Epochs and images, and why the epochs are more than the named budget's on a small data set."""
    budget, named = run.budget, resolve_budget(run.opts)
    line = f"{budget.epochs} epochs" + (f" at batch {budget.batch_size}" if budget.batch_size else "")
    if budget.epochs == named.epochs or named.train_limit is None:
        return line
    return line + (
        f", not {named.epochs}: the data set has fewer than {named.train_limit:,} pre-training images, and a trial "
        f"sees as many images as the budget's {named.epochs} epochs of {named.train_limit:,}"
    )


def dashboard_command(url: str, artifact_dir: str | None) -> str:
    """How to browse this study (the password, if any, left for the user to fill in), runnable as
    printed from a fresh shell in any folder: this interpreter by path, the installed module."""
    command = [sys.executable, "-m", "studies.cli.dashboard", "--storage", redact(url)]
    return shlex.join(command + (["--artifact-dir", artifact_dir] if artifact_dir else []))
