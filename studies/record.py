"""What a trial tells the driver, and what the driver stores: one vocabulary for both sides.

A trial (studies.service.trainable, in a Ray worker) reports an `EpochReport` after each
pre-training epoch but the last, then one `FinalReport` with the evaluation. The driver's
searcher (studies.service.search) reads the same keys and stores them on the Optuna trial:
the validation kNN accuracy of each epoch as its learning curve, the objective as its value,
the rest as user attributes named below (which the reports, the dashboard and reconciliation
read back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

# Keys Ray Tune's scheduler and the searcher read.
STEP = "epoch"
CURVE = "knn_acc"  # validation kNN accuracy: the learning curve ASHA compares
OBJECTIVE = "objective"  # validation linear-probe accuracy at the primary label fraction
COLLAPSE = "collapse_std"
FINAL = "final"  # True on the report that carries the evaluation
ARTIFACTS = "artifacts"


class TrialIdentity(TypedDict):
    """Where a trial runs: several Ray nodes may share a host."""

    node: str
    node_ip: str
    ray_node_id: str
    pid: int
    run_dir: str  # the trial's folder (checkpoints, weights, grids)
    gpu_ids: list[str]  # the GPU ids Ray gave it (trainable.ray_gpu_ids); empty on a CPU-only trial


class EpochReport(TrialIdentity):
    """One pre-training epoch: sidae.pretraining's epoch metrics, the trial's identity, and no
    objective yet."""

    epoch: int
    knn_acc: float
    collapse_std: float
    loss: float
    loss_siam: float
    loss_rec: float
    train_seconds: float
    images_per_second: float
    final: bool  # False
    objective: float | None  # None


class FinalReport(EpochReport):
    """The last epoch and the evaluation. Accuracies per label fraction are keyed by
    sidae.evaluate.fraction_key (e.g. "0.01")."""

    val_linear: dict[str, float]
    test_linear: dict[str, float]
    test_finetune: dict[str, float]
    test_knn: float
    wall_seconds: float
    train_seconds_total: float
    device: str
    seed: int
    epochs_done: int
    artifacts: dict[str, str]  # name -> file, uploaded by the driver as Optuna artifacts
    phase_seconds: dict[str, float]  # where the trial's time went (PHASE_SECONDS below)
    splits: str  # sidae.evaluate.describe_splits: split sizes, labelled images per fraction
    reused_result: bool  # an earlier attempt's finished result, reported again, not retrained


IDENTITY_ATTRS = tuple(TrialIdentity.__annotations__)
# FinalReport keys stored as user attributes of a COMPLETE trial: all but the identity (stored
# at the first report), what the Optuna trial holds itself (its step, its value), the flag that
# marks the last report, the files (stored as artifacts) and the last epoch's own time.
RESULT_ATTRS = tuple(
    key
    for key in FinalReport.__annotations__
    if key not in {*IDENTITY_ATTRS, STEP, OBJECTIVE, FINAL, ARTIFACTS, "train_seconds"}
)
SPLITS = "splits"
REUSED = "reused_result"

# Where a trial's time went: phase -> seconds, non-overlapping (studies.analysis.phases lists
# the phases). sidae.timing's phases of the run, and around it: WORKER_START (first trial in
# a process: from the process's start to the trainable's call; a reused actor: from that
# process's previous trial's last report), data_load (the worker's cached_splits), save_files
# (the grid and the weights), other (the rest of the trainable's time), and STORAGE, added by the
# driver: storing the user attributes and uploading the artifacts.
PHASE_SECONDS = "phase_seconds"
WORKER_START, STORAGE = "worker_start", "storage"

# User attributes the driver sets.
FAIL_REASON = "fail_reason"  # the last line of a FAIL trial's error
ARTIFACT_PREFIX = "artifact:"  # artifact:<name> -> Optuna artifact id
# Why a PRUNED trial stopped: the scheduler (ASHA, the collapse guard) judged it on purpose, or
# the run stopped under it: its time budget ran out, or an error ended the run (a lost lease, a
# storage error). Then its configuration is not done: the next start reruns it.
STOPPED_BY = "stopped_by"
BY_SCHEDULER, BY_TIME_BUDGET, BY_INTERRUPTION = "scheduler", "time-budget", "interrupted"
NOT_DONE = frozenset({BY_TIME_BUDGET, BY_INTERRUPTION})
# Study attributes, computed once per seed (studies.service.baseline): the supervised baseline,
# {seed: {fraction: test accuracy}}, and the controls (sidae.controls: the trials' linear probe on
# the untrained encoder and on raw pixels), {seed: {"untrained": {fraction: test accuracy},
# "pixels": {...}}}; seeds are JSON keys ("0").
SUPERVISED_ATTR = "supervised_finetune"
CONTROLS_ATTR = "controls"
# Where each seed's task ran, {seed: TaskPlacement}: the trials keep theirs as user attributes.
SEED_TASKS_ATTR = "seed_tasks"
GPU_IDS = "gpu_ids"


class TaskPlacement(TypedDict):
    """Where a Ray task of the study ran and on what: a seed's baseline and controls task."""

    node: str
    ray_node_id: str
    gpu_ids: list[str]
    device: str  # the torch device it computed on ("cpu", "cuda:0")


def by_fraction(stored: Mapping[str, float] | None) -> dict[float, float]:
    """A stored label fraction -> accuracy map (JSON keys, "0.01") with the fractions as numbers,
    smallest first; empty when the attribute is missing. The one place stored keys become numbers."""
    return dict(sorted((float(f), float(a)) for f, a in (stored or {}).items()))


def fraction_label(fraction: float) -> str:
    """How every table, report and note prints a label fraction: 0.01 -> "1%"."""
    return f"{fraction:.0%}"
