"""Optuna sampling inside Ray Tune: a Ray Tune `Searcher` that runs Optuna's ask-and-tell.

Ray Tune decides when a trial starts and stops (resources, ASHA, the time budget); Optuna
decides what it runs (its sampler, the queue of enqueued configurations) and keeps the record.
`StudySearch` implements Ray Tune's public Searcher interface (suggest, on_trial_result,
on_trial_complete) on Optuna's public ask-and-tell API (`Study.ask`, `Trial.report`,
`Study.tell`: https://optuna.readthedocs.io/en/stable/tutorial/20_recipes/009_ask_and_tell.html),
so that neither library's private attributes are touched. What it records:
  - every epoch's validation kNN accuracy is an intermediate value (the learning curve);
  - a trial that finished its evaluation is COMPLETE with the validation linear-probe accuracy;
    one that the scheduler stopped first is PRUNED (user attribute `stopped_by`: "scheduler"),
    and so is one that the time budget cut or never let start (`stopped_by`: "time-budget",
    rerun at the next start); one that raised is FAIL, with the reason;
  - the Ray trial id and log folder, the node it ran on, its test-set accuracies, losses, wall
    time, device and seed become user attributes, and its files become Optuna artifacts (only
    files inside the trial's own run folder, one of the study's: a report cannot make the driver
    publish another file).
The driver is the only process that writes to the database: workers report through Ray.

Ray Tune calls the searcher inside its own loop, and would turn an error raised there into a
TuneError traceback (on_trial_result) or into the trial's failure, rerunning it from scratch
(on_trial_complete). So the first error while recording (the storage gone, the lease lost) is
kept in `failure` instead, nothing more is written, `StudyStopper.stop_all` ends the experiment,
and tune_trials raises the error itself. A finished trial's result is not lost with it: its run
folder holds results.json, which the next start reports again without training
(studies.service.trainable.finished_run).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper
from ray.tune.utils.util import unflatten_dict

from sidae.checkpoint import write_atomic
from storage import store_file
from studies.record import (
    ARTIFACT_PREFIX,
    ARTIFACTS,
    BY_SCHEDULER,
    BY_TIME_BUDGET,
    COLLAPSE,
    CURVE,
    FAIL_REASON,
    FINAL,
    IDENTITY_ATTRS,
    OBJECTIVE,
    PHASE_SECONDS,
    RESULT_ATTRS,
    STEP,
    STOPPED_BY,
    STORAGE,
    EpochReport,
    FinalReport,
)

logger = logging.getLogger(__name__)


class TrialIndex(Callback):
    """Tune's Trial objects by id, so the searcher can read a failed trial's error and its log
    folder (Tune tells the searcher only the id)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Trial] = {}

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        # every step, not on_trial_start: a trial whose actor fails to start never starts
        self.by_id.update((trial.trial_id, trial) for trial in trials)


# An exception as a traceback prints it: "module.Name: message" (or the bare name), unindented.
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(: |$)")


def error_line(trial: Trial | None) -> str:
    """The last exception of a failed trial's error file, e.g. "sidae.pretraining.TrainingDiverged:
    loss is nan ...": the one raised last, not an earlier cause chained to it."""
    if trial is None or not trial.error_file or not Path(trial.error_file).exists():
        return "unknown error (no error file)"
    lines = [line.rstrip() for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
    raised = [line for line in lines if _RAISED.match(line)]
    return (raised or lines or ["unknown error"])[-1].strip()[:500]


class StudySearch(Searcher):
    """Each Tune trial is one Optuna trial of `study`, asked for when Tune wants a trial and
    told its outcome when Tune ends it. `space(trial)` suggests the trial's parameters (named
    by dotted config path); enqueued configurations come first, as `Study.ask` gives them."""

    def __init__(
        self,
        study: optuna.Study,
        space: Callable[[optuna.Trial], None],
        *,
        artifact_store: FileSystemArtifactStore,
        index: TrialIndex,
        run_root: Path,
        time_budget_s: float | None = None,
    ) -> None:
        super().__init__(metric=OBJECTIVE, mode="max")
        self.study = study
        self._space = space
        self._artifacts = artifact_store
        self._index = index
        self._run_root = run_root.resolve()  # the study's run folders: a trial's files must be in its own
        self._deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
        self._trials: dict[str, optuna.Trial] = {}  # Tune trial id -> the Optuna trial it runs
        self.outcomes: dict[str, TrialState] = {}  # Tune trial id -> how it ended
        self._reported: dict[str, set[int]] = {}
        self._identified: set[str] = set()
        self.failure: Exception | None = None  # the first error while recording: it ends the study

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        self._recording(lambda: self._ask(trial_id))
        return Searcher.FINISHED if self.failure is not None else dict(self._trials[trial_id].params)

    def _ask(self, trial_id: str) -> None:
        trial = self.study.ask()
        self._space(trial)
        self._trials[trial_id] = trial

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        report = cast(EpochReport, result)
        self._recording(lambda: (self._record_identity(trial_id, report), self._report(trial_id, report)))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self.outcomes or trial_id not in self._trials:
            return
        self._recording(lambda: self._complete(trial_id, result, error))

    def _recording(self, write: Callable[[], object]) -> None:
        """`write` unless an earlier one failed; its error, if any, becomes `failure`."""
        if self.failure is not None:
            return
        try:
            write()
        except Exception as error:
            self.failure = error

    def _complete(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        trial = self._trials[trial_id]
        final = cast(FinalReport, unflatten_dict(result) if result else {})  # Tune flattens nested dicts
        if final:
            self._record_identity(trial_id, final)
            self._report(trial_id, final)  # Tune withholds from the searcher a result that stops a trial
        value = None
        if error:
            state = TrialState.FAIL
            trial.set_user_attr(FAIL_REASON, error_line(self._index.by_id.get(trial_id)))
        elif final.get(FINAL):
            state, value = TrialState.COMPLETE, float(final[OBJECTIVE])
            self._record_result(trial, final)
        else:
            state = TrialState.PRUNED
            past_deadline = self._deadline is not None and time.monotonic() >= self._deadline
            trial.set_user_attr(STOPPED_BY, BY_TIME_BUDGET if past_deadline else BY_SCHEDULER)
        self._tell(trial_id, value, state)

    def end_unfinished(self, stopped_by: str = BY_TIME_BUDGET) -> None:
        """After Tune returns or raises: trials it never finished (the time budget or an error
        cut them while running, or before they started) end PRUNED, `stopped_by` saying which,
        instead of staying RUNNING; the next start runs their configurations again."""
        for trial_id, trial in self._trials.items():
            if trial_id not in self.outcomes:
                trial.set_user_attr(STOPPED_BY, stopped_by)
                self._tell(trial_id, None, TrialState.PRUNED)

    def save(self, checkpoint_path: str) -> None:
        """Tune's experiment checkpoint gets the Tune -> Optuna trial numbers, for reading only:
        the study itself is in the database, and rerunning the command resumes it."""
        numbers = {trial_id: trial.number for trial_id, trial in self._trials.items()}
        write_atomic(Path(checkpoint_path), json.dumps({"study": self.study.study_name, "trials": numbers}).encode())

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the Tuner's configuration, this searcher included, into its experiment
        # folder: only the study's name goes there, not the study (its storage URL, perhaps with
        # a password) nor the artifact store. Unpickled (__setstate__) it is that record, not a
        # searcher: a study resumes from its database when the command is rerun.
        return {"study_name": self.study.study_name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.study_name: str = state["study_name"]

    def _tell(self, trial_id: str, value: float | None, state: TrialState) -> None:
        self.study.tell(self._trials[trial_id], value, state=state)
        self.outcomes[trial_id] = state

    def _report(self, trial_id: str, report: EpochReport) -> None:
        """Validation kNN accuracy at this epoch: the trial's learning curve in Optuna."""
        step = int(report[STEP])
        reported = self._reported.setdefault(trial_id, set())
        if step not in reported:
            self._trials[trial_id].report(float(report[CURVE]), step)
            reported.add(step)

    def _record_identity(self, trial_id: str, report: EpochReport) -> None:
        """Once per trial: where it runs (Ray trial id, log folder, node, process)."""
        if trial_id in self._identified:
            return
        self._identified.add(trial_id)
        trial = self._trials[trial_id]
        trial.set_user_attr("ray_trial_id", trial_id)
        tune_trial = self._index.by_id.get(trial_id)
        if tune_trial is not None:
            trial.set_user_attr("ray_logdir", tune_trial.path)
        for key in IDENTITY_ATTRS:
            if key in report:
                trial.set_user_attr(key, report[key])

    def _record_result(self, trial: optuna.Trial, final: FinalReport) -> None:
        """The results as user attributes, the files as artifacts; the time this takes joins the
        worker's phase_seconds as STORAGE, stored last."""
        start = time.perf_counter()
        for key in RESULT_ATTRS:
            if key in final and key != PHASE_SECONDS:
                trial.set_user_attr(key, final[key])
        run_dir = Path(final.get("run_dir", "")).resolve()
        for name, path in final.get(ARTIFACTS, {}).items():
            if run_dir.parent != self._run_root or not _is_file_inside(Path(path), run_dir):
                logger.warning("not storing artifact %s of trial %d: not a file in its run folder", path, trial.number)
                continue
            try:
                artifact_id = store_file(self._artifacts, Path(path), trial)
                trial.set_user_attr(f"{ARTIFACT_PREFIX}{name}", artifact_id)
            except OSError as error:  # a full disk loses the picture, not the trial
                logger.warning("could not store artifact %s of trial %d: %s", path, trial.number, error)
        if PHASE_SECONDS in final:
            phases = {**final[PHASE_SECONDS], STORAGE: round(time.perf_counter() - start, 3)}
            trial.set_user_attr(PHASE_SECONDS, phases)


def _is_file_inside(path: Path, folder: Path) -> bool:
    """A regular file under `folder` once every symbolic link is followed."""
    real = path.resolve()
    return real.is_relative_to(folder) and real.is_file()


class StudyStopper(Stopper):
    """Ray Tune's stopper for a study: a trial whose representation collapsed stops (the std of
    its l2-normalised validation features, about 1/sqrt(dim) when healthy and 0 when every image
    maps to one point, fell below `min_collapse_std`; it can only waste its remaining epochs and
    ends PRUNED; 0 turns this off), and the whole experiment stops once the searcher failed to
    record (StudySearch.failure)."""

    def __init__(self, search: StudySearch, min_collapse_std: float = 0.0) -> None:
        self._search = search
        self._min_collapse_std = min_collapse_std

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return float(result.get(COLLAPSE, float("inf"))) < self._min_collapse_std

    def stop_all(self) -> bool:
        return self._search.failure is not None
