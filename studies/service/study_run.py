"""One driver's run of a study, whole from the start.

A StudyRun is built (studies.service.runner.run_study) only once its options are validated, the
storage is open and the Optuna study is created or checked; it owns all of them, so no part of
the service receives a half-built context or eight loose parameters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.artifacts import FileSystemArtifactStore

from studies.analysis.claim import Design
from studies.service.budgets import Budget
from studies.service.catalogue import Study
from studies.service.estimate import Expected
from studies.service.options import StudyOptions
from studies.service.trainable import TrialContext


@dataclass
class StudyRun:
    opts: StudyOptions
    study: Study  # the named study: what it searches, its sampler and scheduler
    budget: Budget  # the budget with the user's overrides
    design: Design | None  # a w-sweep's confirmatory design; None: a descriptive run
    ctx: TrialContext  # what every trial is shipped with
    storage: optuna.storages.BaseStorage
    artifact_store: FileSystemArtifactStore
    optuna_study: optuna.Study
    # each kind of trial's expected seconds, timed at the first call; None with --quiet
    expected: Callable[[], Expected | None] = lambda: None
    started: float = field(default_factory=time.monotonic)

    def time_left(self) -> float | None:
        """Seconds of --time-budget left (None: no budget), shared by every round of trials."""
        if self.opts.time_budget_s is None:
            return None
        return self.opts.time_budget_s - (time.monotonic() - self.started)

    def in_time(self) -> bool:
        left = self.time_left()
        return left is None or left > 0
