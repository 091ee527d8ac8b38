"""Start-up reconciliation (studies.service.reconcile) on real Optuna studies: what a rerun of a
study command runs again, queues, and leaves alone. No Ray, no training: trials are written
through Optuna's public API, a RUNNING one stands for a trial a dead driver left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.trial import TrialState, create_trial

from studies.service.catalogue import W_SWEEP_DISTRIBUTIONS
from studies.service.reconcile import STALE_REASON, finished_count, grid_todo, is_done, queued, trials_to_start

GRID = [{"seed": 0, "w": w} for w in (0.0, 0.5, 1.0)] + [{"seed": 1, "w": w} for w in (0.0, 0.5, 1.0)]


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> BaseStorage:
    if request.param == "memory":
        return InMemoryStorage()
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'studies.db'}")


def new_study(storage: BaseStorage) -> optuna.Study:
    return optuna.create_study(study_name="w-sweep-mnist", storage=storage, direction="maximize")


def add(study: optuna.Study, params: dict[str, Any], state: TrialState, stopped_by: str | None = None) -> None:
    """A finished trial of the given grid point, as the searcher leaves it."""
    attrs = {} if stopped_by is None else {"stopped_by": stopped_by}
    value = 0.5 if state == TrialState.COMPLETE else None
    study.add_trial(
        create_trial(params=params, distributions=W_SWEEP_DISTRIBUTIONS, value=value, state=state, user_attrs=attrs)
    )


def orphan(study: optuna.Study, params: dict[str, Any]) -> int:
    """A trial that a driver started and never told: RUNNING forever."""
    study.enqueue_trial(params)
    trial = study.ask(W_SWEEP_DISTRIBUTIONS)
    assert trial.params == params
    return trial.number


def test_is_done_rule() -> None:
    def trial(state: TrialState, stopped_by: str | None = None) -> optuna.trial.FrozenTrial:
        return create_trial(
            params={"w": 0.5},
            distributions={"w": W_SWEEP_DISTRIBUTIONS["w"]},
            value=0.5 if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs={} if stopped_by is None else {"stopped_by": stopped_by},
        )

    assert is_done(trial(TrialState.COMPLETE))
    assert is_done(trial(TrialState.PRUNED, "scheduler"))  # judged on purpose: never rerun
    assert is_done(trial(TrialState.PRUNED))  # a study from before stopped_by: kept as pruned
    assert not is_done(trial(TrialState.PRUNED, "time-budget"))  # cut short: not done
    assert not is_done(trial(TrialState.PRUNED, "interrupted"))  # the run's error ended it: not done
    assert not is_done(trial(TrialState.FAIL))
    assert not is_done(trial(TrialState.WAITING))


def test_grid_todo_skips_done_and_queued_points_and_caps_retries(storage: BaseStorage) -> None:
    study = new_study(storage)
    add(study, GRID[0], TrialState.COMPLETE)
    add(study, GRID[1], TrialState.PRUNED, "scheduler")
    add(study, GRID[2], TrialState.PRUNED, "time-budget")  # cut by the time budget: runs again
    study.enqueue_trial(GRID[3])  # already queued: not queued twice
    add(study, GRID[4], TrialState.FAIL)  # failed once: one retry left (max_retries=1)
    add(study, GRID[5], TrialState.FAIL)
    add(study, GRID[5], TrialState.FAIL)  # failed twice: more than max_retries, reported, not retried
    assert grid_todo(study, GRID, max_retries=1) == [GRID[2], GRID[4]]
    assert grid_todo(study, GRID, max_retries=2) == [GRID[2], GRID[4], GRID[5]]
    assert grid_todo(study, GRID, max_retries=0) == [GRID[2]]


def test_a_failed_point_that_later_completed_is_done(storage: BaseStorage) -> None:
    study = new_study(storage)
    add(study, GRID[0], TrialState.FAIL)
    add(study, GRID[0], TrialState.COMPLETE)
    assert grid_todo(study, GRID[:1], max_retries=5) == []


def test_grid_plan_fails_stale_trials_and_queues_what_is_missing_once(storage: BaseStorage) -> None:
    study = new_study(storage)
    add(study, GRID[0], TrialState.COMPLETE)
    add(study, GRID[1], TrialState.PRUNED, "time-budget")
    stale = orphan(study, GRID[2])
    add(study, GRID[3], TrialState.FAIL)
    add(study, GRID[3], TrialState.FAIL)  # past the retry cap
    assert trials_to_start(study, storage, GRID, trials=0, max_retries=1) == 4  # GRID[1], [2], [4], [5]

    trials = study.get_trials()
    assert trials[stale].state == TrialState.FAIL and trials[stale].user_attrs["fail_reason"] == STALE_REASON
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert sorted(map(str, queued(study))) == sorted(map(str, [GRID[1], GRID[2], GRID[4], GRID[5]]))
    # a second start before anything ran queues nothing new
    assert trials_to_start(study, storage, GRID, trials=0, max_retries=1) == 4
    assert len(queued(study)) == 4


def test_a_later_stages_points_left_running_are_queued_with_the_rest(storage: BaseStorage) -> None:
    """A w-sweep's driver killed in its confirmation: the next start counts the confirmation's
    trials it left running with those still queued (it said "8 to run" and ran 10)."""
    study = new_study(storage)
    for point in GRID[:3]:  # the pilot, done
        add(study, point, TrialState.COMPLETE)
    confirmation = [{"seed": s, "w": w} for s in (2, 3) for w in (0.5, 0.0, 1.0)]
    for point in confirmation:
        study.enqueue_trial(point)
    first, second = (study.ask(W_SWEEP_DISTRIBUTIONS).number for _ in range(2))  # the driver dies
    assert trials_to_start(study, storage, GRID[:3], trials=0, max_retries=1) == 6
    assert sorted(map(str, queued(study))) == sorted(map(str, confirmation))
    assert {study.trials[first].state, study.trials[second].state} == {TrialState.FAIL}
    # the confirmation's own reconciliation then finds nothing more to queue
    assert trials_to_start(study, storage, confirmation, trials=0, max_retries=1) == 6


def test_an_interrupted_point_is_never_dropped_but_a_failing_one_is(storage: BaseStorage) -> None:
    """A driver killed (or suspended past its lease) is not the point failing: however often it
    happens, the point runs again. Its own errors count against max_retries."""
    study = new_study(storage)
    orphan(study, GRID[0])
    for _ in range(3):  # three drivers in a row die with the point under way
        assert trials_to_start(study, storage, GRID[:1], trials=0, max_retries=1) == 1
        study.ask(W_SWEEP_DISTRIBUTIONS)  # the retry starts, and its driver dies too
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL] * 3 + [TrialState.RUNNING]
    add(study, GRID[1], TrialState.PRUNED, "interrupted")  # ended by the run's error: runs again
    add(study, GRID[2], TrialState.FAIL)
    add(study, GRID[2], TrialState.FAIL)  # its own error twice: past max_retries=1
    assert trials_to_start(study, storage, GRID[:3], trials=0, max_retries=1) == 2
    assert sorted(map(str, queued(study))) == sorted(map(str, GRID[:2]))


def test_sampled_plan_requeues_stale_configurations_and_counts_what_is_done(storage: BaseStorage) -> None:
    study = new_study(storage)
    add(study, {"seed": 0, "w": 0.1}, TrialState.COMPLETE)
    add(study, {"seed": 0, "w": 0.2}, TrialState.COMPLETE)
    add(study, {"seed": 0, "w": 0.3}, TrialState.PRUNED, "scheduler")
    add(study, {"seed": 0, "w": 0.4}, TrialState.PRUNED, "time-budget")  # not done, not requeued
    add(study, {"seed": 0, "w": 0.45}, TrialState.FAIL)  # a failed sample is not retried
    stale_params = {"seed": 7, "w": 0.6}
    stale = orphan(study, stale_params)
    assert finished_count(study) == 3
    assert trials_to_start(study, storage, None, trials=5, max_retries=1) == 5 - 3

    trials = study.get_trials()
    assert trials[stale].state == TrialState.FAIL and trials[stale].user_attrs["fail_reason"] == STALE_REASON
    assert queued(study) == [stale_params]  # the dead driver's configuration runs first
    retried = study.ask(W_SWEEP_DISTRIBUTIONS)
    assert retried.params == stale_params
    assert trials_to_start(study, storage, None, trials=2, max_retries=1) == 0  # never negative


def test_sampled_plan_on_a_new_study_runs_the_whole_budget(storage: BaseStorage) -> None:
    study = new_study(storage)
    assert trials_to_start(study, storage, None, trials=4, max_retries=1) == 4
    assert queued(study) == [] and study.get_trials() == []
