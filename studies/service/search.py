"""Optuna sampling inside Ray Tune, with the study's record kept right.

Ray's OptunaSearch asks Optuna for each Tune trial and tells it the result, but it hard-wires
Optuna's NopPruner and tells a trial that the Tune scheduler stopped early as COMPLETE with its
low-rung value. `StudySearch` keeps OptunaSearch's ask/tell and changes what is recorded:
  - every epoch's validation kNN accuracy is an intermediate value (the learning curve);
  - a trial that finished its evaluation is COMPLETE with the validation linear-probe accuracy;
    one that the scheduler stopped first is PRUNED (user attribute `stopped_by`: "scheduler"),
    and so is one that the time budget cut or never let start (`stopped_by`: "time-budget",
    rerun at the next start); one that raised is FAIL, with the reason;
  - the Ray trial id and log folder, the node it ran on, its test-set accuracies, losses, wall
    time, device and seed become user attributes, and its files become Optuna artifacts.
The driver is the only process that writes to the database: workers report through Ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import unflatten_dict

from studies.service.reconcile import BY_SCHEDULER, BY_TIME_BUDGET, STOPPED_BY

logger = logging.getLogger(__name__)

# Keys of a trial's final report that are stored as user attributes.
RESULT_ATTRS = ("test_linear", "test_finetune", "test_knn", "val_linear", "loss", "loss_siam", "loss_rec",
                "collapse_std", "knn_acc", "wall_seconds", "train_seconds_total", "device", "seed", "epochs_done",
                "images_per_second")
IDENTITY_ATTRS = ("node", "node_ip", "ray_node_id", "pid", "run_dir")


class TrialIndex(Callback):
    """Tune's Trial objects by id, so the searcher can read a failed trial's error and its log
    folder (Tune tells the searcher only the id)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Trial] = {}

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        # every step, not on_trial_start: a trial whose actor fails to start never starts
        self.by_id.update((trial.trial_id, trial) for trial in trials)


def error_line(trial: Trial | None) -> str:
    """The last line of a failed trial's error, e.g. "TrainingDiverged: loss is nan ..."."""
    if trial is None or not trial.error_file or not Path(trial.error_file).exists():
        return "unknown error (no error file)"
    lines = [line.strip() for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0]]
    return (errors or lines or ["unknown error"])[-1][:500]


class StudySearch(OptunaSearch):
    def __init__(self, space: Callable[[optuna.Trial], None], *, study_name: str, storage: optuna.storages.BaseStorage,
                 sampler: optuna.samplers.BaseSampler, artifact_store: optuna.artifacts.FileSystemArtifactStore,
                 index: TrialIndex, time_budget_s: float | None = None) -> None:
        super().__init__(space, metric="objective", mode="max", sampler=sampler, study_name=study_name,
                         storage=storage)
        self._deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
        self._store = storage
        self._artifacts = artifact_store
        self._index = index
        self.outcomes: dict[str, TrialState] = {}
        self._reported: dict[str, set[int]] = {}
        self._identified: set[str] = set()

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def optuna_trial(self, trial_id: str) -> optuna.Trial:
        return self._ot_trials[trial_id]

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._record_identity(trial_id, result)
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict[str, Any]) -> None:
        """Validation kNN accuracy at this epoch: the trial's learning curve in Optuna."""
        step = int(result["epoch"])
        reported = self._reported.setdefault(trial_id, set())
        if step not in reported:
            self._ot_trials[trial_id].report(float(result["knn_acc"]), step)
            reported.add(step)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        final = unflatten_dict(result) if result else {}
        if final:
            self._record_identity(trial_id, final)
            self._report(trial_id, final)  # Tune withholds from the searcher a result that stops a trial
        value = None
        if error:
            state = TrialState.FAIL
            ot_trial.set_user_attr("fail_reason", error_line(self._index.by_id.get(trial_id)))
        elif final.get("final"):
            state, value = TrialState.COMPLETE, float(final["objective"])
            self._record_result(ot_trial, final)
        else:
            state = TrialState.PRUNED
            past_deadline = self._deadline is not None and time.monotonic() >= self._deadline
            ot_trial.set_user_attr(STOPPED_BY, BY_TIME_BUDGET if past_deadline else BY_SCHEDULER)
        self._tell(trial_id, value, state)

    def end_unfinished(self) -> None:
        """After Tune returns: trials it never finished (the time budget cut them while running,
        or before they started) end PRUNED by the time budget instead of staying RUNNING."""
        for trial_id, ot_trial in self._ot_trials.items():
            if trial_id not in self._completed_trials:
                ot_trial.set_user_attr(STOPPED_BY, BY_TIME_BUDGET)
                self._tell(trial_id, None, TrialState.PRUNED)

    def _tell(self, trial_id: str, value: float | None, state: TrialState) -> None:
        self._ot_study.tell(self._ot_trials[trial_id], value, state=state)
        self.outcomes[trial_id] = state
        self._completed_trials.add(trial_id)

    def _record_identity(self, trial_id: str, result: dict[str, Any]) -> None:
        """Once per trial: where it runs (Ray trial id, log folder, node, process)."""
        if trial_id in self._identified:
            return
        self._identified.add(trial_id)
        ot_trial = self._ot_trials[trial_id]
        ot_trial.set_user_attr("ray_trial_id", trial_id)
        tune_trial = self._index.by_id.get(trial_id)
        if tune_trial is not None:
            ot_trial.set_user_attr("ray_logdir", tune_trial.path)
        for key in IDENTITY_ATTRS:
            if key in result:
                ot_trial.set_user_attr(key, result[key])

    def _record_result(self, ot_trial: optuna.Trial, final: dict[str, Any]) -> None:
        for key in RESULT_ATTRS:
            if key in final:
                ot_trial.set_user_attr(key, final[key])
        for name, path in final.get("artifacts", {}).items():
            try:
                artifact_id = upload_artifact(artifact_store=self._artifacts, file_path=path, study_or_trial=ot_trial)
                ot_trial.set_user_attr(f"artifact:{name}", artifact_id)
            except OSError as error:  # a full disk loses the picture, not the trial
                logger.warning("could not store artifact %s of trial %d: %s", path, ot_trial.number, error)
