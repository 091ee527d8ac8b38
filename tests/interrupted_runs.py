"""`python -m tests.interrupted_runs FAULT ARGS...`: studies/run.py ARGS in a process of its own,
with one fault injected (tests/test_interruptions.py). In its own process because the fault
patches the study service's classes, and a broken run's Ray would outlive the test in the
worker that runs the next ones.

FAULT: "tune-callback" (a Ray Tune callback raises at the first epoch's result) or "lost-tell"
(the storage refuses the write that makes a trial COMPLETE)."""

from __future__ import annotations

import sys
from typing import Any

from optuna.trial import TrialState

from storage import StorageError
from storage.resilient import ResilientStorage
from studies.cli import run
from studies.service.progress import StudyProgress

OUTAGE = "database unreachable for 300 s (during set_trial_state_values): connection refused"


def _raise_at_first_result(self: StudyProgress, **info: Any) -> None:
    raise RuntimeError("tune loop broke")


def _refuse_complete() -> None:
    write = ResilientStorage.set_trial_state_values

    def refuse(self: ResilientStorage, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state == TrialState.COMPLETE:
            raise StorageError(OUTAGE)
        return write(self, trial_id, state, values)

    ResilientStorage.set_trial_state_values = refuse  # type: ignore[method-assign]


if __name__ == "__main__":
    fault, args = sys.argv[1], sys.argv[2:]
    if fault == "tune-callback":
        StudyProgress.on_trial_result = _raise_at_first_result  # type: ignore[attr-defined]
    elif fault == "lost-tell":
        _refuse_complete()
    else:
        sys.exit(f"unknown fault {fault!r}")
    sys.exit(run.main(args))
