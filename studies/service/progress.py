"""A one-line progress display for a running study: trials done / running / pruned / failed and
the best objective so far (replaces Tune's verbose tables)."""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.experiment import Trial
from tqdm import tqdm

from studies.record import OBJECTIVE
from studies.service.search import StudySearch


class StudyProgress(Callback):
    def __init__(self, search: StudySearch, total: int, enabled: bool = True) -> None:
        self._search = search
        self._bar = tqdm(total=total, desc="trials", unit="trial", disable=not enabled, dynamic_ncols=True)
        self._running: set[str] = set()
        self._best: float | None = None

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
        states = list(self._search.outcomes.values())
        best = "-" if self._best is None else f"{self._best:.4f}"
        self._bar.set_postfix_str(
            f"complete {states.count(TrialState.COMPLETE)}, running {len(self._running)}, "
            f"pruned {states.count(TrialState.PRUNED)}, failed {states.count(TrialState.FAIL)}, "
            f"best {best}"
        )
