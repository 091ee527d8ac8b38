"""A one-line progress display for a running study: trials done / running / pruned / failed, the
best objective so far and the supervised-baseline and control tasks done beside the trials
(replaces Tune's verbose tables). tqdm's ETA appears once a trial has finished."""

from __future__ import annotations

import time
from typing import Any

from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.experiment import Trial
from tqdm import tqdm

from studies.record import OBJECTIVE
from studies.service.baseline import SeedTasks
from studies.service.search import StudySearch

REFRESH_S = 5.0  # how often the line is redrawn between trial events


class StudyProgress(Callback):
    def __init__(
        self, search: StudySearch, total: int, enabled: bool = True, seed_tasks: SeedTasks | None = None
    ) -> None:
        self._search = search
        self._bar = tqdm(total=total, desc="trials", unit="trial", disable=not enabled, dynamic_ncols=True)
        self._running: set[str] = set()
        self._best: float | None = None
        # the supervised baseline and controls, one task per seed, which share the trials' slots:
        # without them in the line, a bar at 0 while they run looks stuck
        self._seed_tasks = seed_tasks
        self._drawn_at = time.monotonic()  # when the line was last drawn

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        # tqdm redraws only when told: without this, the elapsed time stands still through a
        # 10-minute trial and the study looks hung
        if time.monotonic() - self._drawn_at > REFRESH_S:
            self._refresh()

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._running.add(trial.trial_id)
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._finish(trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._finish(trial)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._bar.close()

    def _finish(self, trial: Trial) -> None:
        self._running.discard(trial.trial_id)
        last = trial.last_result or {}
        if self._search.outcomes.get(trial.trial_id) == TrialState.COMPLETE and last.get(OBJECTIVE) is not None:
            self._best = max(self._best or 0.0, float(last[OBJECTIVE]))
        self._bar.update(1)
        self._refresh()

    def _refresh(self) -> None:
        self._drawn_at = time.monotonic()
        states = list(self._search.outcomes.values())
        best = "-" if self._best is None else f"{self._best:.4f}"
        self._bar.set_postfix_str(
            f"complete {states.count(TrialState.COMPLETE)}, running {len(self._running)}, "
            f"pruned {states.count(TrialState.PRUNED)}, failed {states.count(TrialState.FAIL)}, "
            f"best {best}" + self._seed_tasks_text()
        )

    def _seed_tasks_text(self) -> str:
        tasks = self._seed_tasks
        return f"; baseline and controls {tasks.done}/{tasks.total} seeds" if tasks and tasks.total else ""
