"""Start-up reconciliation: what a rerun of the same study command must do.

Optuna's heartbeats and RetryFailedTrialCallback only work inside `study.optimize`, not with the
ask-and-tell that the searcher (studies.service.search) runs, so a driver that died leaves its
trials RUNNING forever.
Before scheduling anything, the next driver marks those trials FAIL (with the reason) and puts
their configurations back in the queue. Completed work, and trials the scheduler pruned on
purpose, are kept and never rerun; a trial that the time budget cut is not done: its grid point
runs again, and a sampled study samples another in its place.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from studies.record import FAIL_REASON, NOT_DONE, STOPPED_BY

STALE_REASON = "left RUNNING by a driver that stopped; marked FAIL and retried at the next start"


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def fail_stale_trials(study: optuna.Study, storage: BaseStorage) -> list[FrozenTrial]:
    """Mark RUNNING trials FAIL (their driver is gone) and return them. `storage` is the
    study's: Optuna's public API reaches another process's trial only through it."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, FAIL_REASON, STALE_REASON)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return stale


def configuration(trial: FrozenTrial) -> dict[str, Any]:
    """The point a trial runs: its parameters, or before it starts, those it was enqueued with."""
    return dict(trial.params or trial.system_attrs.get("fixed_params", {}))


def queued(study: optuna.Study) -> list[dict[str, Any]]:
    """Configurations enqueued but not yet started (Optuna's WAITING trials)."""
    return [configuration(t) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]


def is_done(trial: FrozenTrial) -> bool:
    """COMPLETE, or PRUNED by the scheduler: what a rerun must not run again."""
    if trial.state == TrialState.PRUNED:
        return trial.user_attrs.get(STOPPED_BY) not in NOT_DONE
    return trial.state == TrialState.COMPLETE


def failed_itself(trial: FrozenTrial) -> bool:
    """FAIL by its own error, not because its driver stopped (killed, suspended, lost its
    lease): a point interrupted any number of times has not failed and must still run."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get(FAIL_REASON) != STALE_REASON


def grid_todo(study: optuna.Study, points: list[dict[str, Any]], max_retries: int) -> list[dict[str, Any]]:
    """Grid points still to run: not done, not already queued, and failed by their own error at
    most max_retries times (a point that keeps failing is reported, not retried forever)."""
    trials = study.get_trials(deepcopy=False)
    done = {_key(t.params) for t in trials if is_done(t)}
    waiting = {_key(p) for p in queued(study)}
    failures = Counter(_key(t.params) for t in trials if failed_itself(t))
    return [p for p in points if _key(p) not in done | waiting and failures[_key(p)] <= max_retries]


def finished_count(study: optuna.Study) -> int:
    return sum(is_done(t) for t in study.get_trials(deepcopy=False))


def trials_to_start(
    study: optuna.Study, storage: BaseStorage, points: list[dict[str, Any]] | None, trials: int, max_retries: int
) -> int:
    """Reconcile, enqueue what must run, and return how many Tune trials to start.

    Grid studies (points given) enqueue every missing point, and the points of a later stage (a
    w-sweep's confirmation) that a dead driver left, so the count is all this start will run.
    Sampled studies retry the configurations a dead driver left behind and sample the rest, up
    to `trials` finished."""
    stale = fail_stale_trials(study, storage)
    if points is not None:
        left = [p for p in map(configuration, stale) if p not in points]
        for point in grid_todo(study, points + left, max_retries):
            study.enqueue_trial(point)
        return len(queued(study))
    for trial in stale:
        study.enqueue_trial(trial.params)
    return max(0, trials - finished_count(study))
