"""The Ray Tune trainable: an Optuna trial's parameters -> a sidae config -> a pre-trained and
evaluated SidAE.

Each epoch reports the validation kNN accuracy (the intermediate value the scheduler and the
dashboard see); the last report adds the objective: linear-probe accuracy at the primary label
fraction, measured on the validation split (never the test set), plus the test-set figures
that are stored as user attributes (studies.record names every key), and the seconds each
phase of the trial took (studies.record.PHASE_SECONDS).

A trial whose run folder already holds its finished result (results.json, the grid and the
weights: the driver died, or lost its database, before recording it) reports that result again
instead of training again; the stored trial says so (studies.record.REUSED).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from sidae.allocator import keep_freed_memory
from sidae.checkpoint import save_atomic
from sidae.config import DataConfig, SidAEConfig, default_config, override
from sidae.data import DataSplits, load_splits
from sidae.evaluate import describe_splits, fraction_key
from sidae.experiment import CHECKPOINT_FILE, RunResult, finished, run
from sidae.visualize import save_reconstruction_grid
from studies.processes import start_time
from studies.record import (
    ARTIFACTS,
    FINAL,
    GPU_IDS,
    OBJECTIVE,
    PHASE_SECONDS,
    REUSED,
    SPLITS,
    STEP,
    WORKER_START,
    EpochReport,
    FinalReport,
    TrialIdentity,
)
from studies.service.budgets import Budget

GRID_IMAGES = 8


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one study run shares; shipped to the Ray workers with the trainable."""

    dataset: str
    budget: Budget
    data_dir: str  # absolute; on a cluster, the same path on every node
    run_root: str  # per-trial folders (checkpoints, grids), on storage every node can reach
    threads: int = 1
    device: str = "auto"
    fixed: Mapping[str, Any] = field(default_factory=dict)  # --set overrides, dotted config paths
    # A confirmatory w-sweep's pilot seeds (studies.analysis.claim.Design): their trials only
    # choose w, on the validation probe, so they do not fine-tune (a third of an MNIST `cpu`
    # trial: benchmarks/README.md); fine-tuning is reported on the fresh seeds
    pilot_seeds: tuple[int, ...] = ()


def trial_config(params: Mapping[str, Any], ctx: TrialContext) -> SidAEConfig:
    """Data-set defaults, then the budget, then the user's --set values, then the trial's
    parameters (named by dotted config path); a pilot seed's trial without fine-tuning."""
    values = {
        **ctx.budget.config_values(),
        "data.data_dir": ctx.data_dir,
        "data.download": False,
        "device": ctx.device,
        **ctx.fixed,
        **params,
        **({"eval.finetune": False} if params.get("seed") in ctx.pilot_seeds else {}),
    }
    cfg = override(default_config(ctx.dataset, device=ctx.device), values)  # the device picks the model defaults
    fractions = cfg.eval.label_fractions
    primary = ctx.budget.primary_fraction
    if primary not in fractions:
        cfg = override(cfg, {"eval.label_fractions": tuple(sorted({*fractions, primary}))})
    return cfg


_DATA_CACHE: dict[DataConfig, DataSplits] = {}


def cached_splits(cfg: DataConfig) -> DataSplits:
    """Data decoded once per worker process: Tune reuses the process for the next trial."""
    if cfg not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one data set at a time is enough, and bounds memory
        _DATA_CACHE[cfg] = load_splits(cfg)
    return _DATA_CACHE[cfg]


def epoch_report(metrics: dict[str, float], identity: TrialIdentity) -> EpochReport:
    """An epoch before the last: sidae.pretraining's epoch metrics and where the trial runs."""
    return cast(EpochReport, {**metrics, **identity, FINAL: False, OBJECTIVE: None})


def final_report(
    result: RunResult,
    ctx: TrialContext,
    identity: TrialIdentity,
    artifacts: dict[str, str],
    phase_seconds: dict[str, float] | None = None,
    splits: str = "",
    reused: bool = False,
) -> FinalReport:
    """The last epoch's metrics and the evaluation; the objective is on the validation split.
    phase_seconds: the whole trial's (default: the run's own, result.phase_seconds); splits:
    sidae.evaluate.describe_splits of the trial's data (what the driver prints for the study);
    reused: the result is an earlier attempt's (finished_run), not trained by this one."""
    phases = result.phase_seconds if phase_seconds is None else phase_seconds
    return cast(
        FinalReport,
        {
            **result.history[-1],
            **identity,
            FINAL: True,
            OBJECTIVE: result.val_linear[fraction_key(ctx.budget.primary_fraction)],
            "val_linear": result.val_linear,
            "test_linear": result.linear,
            "test_finetune": result.finetune,
            "test_knn": result.knn,
            "wall_seconds": result.wall_seconds,
            "train_seconds_total": sum(epoch["train_seconds"] for epoch in result.history),
            "device": result.device,
            "seed": result.config.seed,
            "epochs_done": len(result.history),
            ARTIFACTS: artifacts,
            PHASE_SECONDS: {phase: round(seconds, 3) for phase, seconds in phases.items()},
            SPLITS: splits,
            REUSED: reused,
        },
    )


def trial_files(run_dir: Path) -> dict[str, Path]:
    """A finished trial's files, by artifact name."""
    return {"reconstructions": run_dir / "reconstructions.png", "model": run_dir / "model.pt"}


def save_trial_files(result: RunResult, data: DataSplits, run_dir: Path) -> dict[str, str]:
    """A reconstruction grid of validation images and the trained weights; the resume
    checkpoint (with optimizer state) is dropped once the trial is done."""
    assert result.model is not None
    files = trial_files(run_dir)
    save_reconstruction_grid(result.model, data.val.images[:GRID_IMAGES], result.config, files["reconstructions"])
    save_atomic({"config": result.config.to_dict(), "model": result.model.state_dict()}, files["model"])
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return {name: str(path) for name, path in files.items()}


def finished_run(cfg: SidAEConfig, run_dir: Path) -> tuple[RunResult, dict[str, str]] | None:
    """The result and files an earlier attempt at exactly `cfg` left whole in run_dir, or None.
    The files are written after results.json, so with them present the attempt got to its end."""
    files = trial_files(run_dir)
    result = finished(run_dir, cfg) if all(path.is_file() for path in files.values()) else None
    return None if result is None else (result, {name: str(path) for name, path in files.items()})


def run_key(cfg: SidAEConfig) -> str:
    """A trial's folder name: a digest of its whole config. A configuration that is run again
    (Ray retrying a crashed trial, or the next driver retrying one a dead driver left behind)
    finds its last epoch's checkpoint there and resumes instead of starting over."""
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


_last_report: float | None = None  # time.time() of this process's last report to Tune


def process_start_time() -> float | None:
    """When this process started (seconds since the epoch), from /proc; None elsewhere."""
    try:
        ticks = start_time("self")
        if ticks is None:
            return None
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def worker_start_seconds(now: float) -> float | None:
    """Before this trial's trainable was called: the process's start-up (interpreter, imports,
    Ray's actor set-up) for its first trial, or the gap since its previous trial's last report
    when Tune reuses the actor."""
    since = _last_report if _last_report is not None else process_start_time()
    return None if since is None else max(0.0, now - since)


def _reported() -> None:
    global _last_report
    _last_report = time.time()


def train_trial(params: dict[str, Any], ctx: TrialContext) -> None:
    """Ray Tune function trainable for one trial."""
    from ray import tune  # imported here so that importing this module does not need ray

    entered, clock = time.time(), time.perf_counter()
    started = worker_start_seconds(entered)
    torch.set_num_threads(ctx.threads)
    keep_freed_memory()
    cfg = trial_config(params, ctx)
    run_dir = Path(ctx.run_root) / run_key(cfg)
    identity = TrialIdentity(node=socket.gethostname(), **_ray_node(), pid=os.getpid(), run_dir=str(run_dir))
    previous = finished_run(cfg, run_dir)
    if previous is not None:
        result, artifacts = previous
        phases = {**({WORKER_START: started} if started is not None else {}), "other": time.perf_counter() - clock}
        tune.report(dict(final_report(result, ctx, identity, artifacts, phases, reused=True)))
        _reported()
        return

    def report_epoch(metrics: dict[str, float]) -> None:
        if metrics[STEP] < cfg.optim.epochs:  # the last epoch is reported with the evaluation
            tune.report(dict(epoch_report(metrics, identity)))
            _reported()

    load_start = time.perf_counter()
    data = cached_splits(cfg.data)
    data_load = time.perf_counter() - load_start
    # The controls are per seed, not per trial: studies.service.baseline computes them once.
    result = run(cfg, out_dir=run_dir, callback=report_epoch, data=data, progress=False, controls=False)
    save_start = time.perf_counter()
    artifacts = save_trial_files(result, data, run_dir)
    phases = {
        **({WORKER_START: started} if started is not None else {}),
        "data_load": data_load,
        **result.phase_seconds,
        "save_files": time.perf_counter() - save_start,
    }
    inside = sum(seconds for phase, seconds in phases.items() if phase != WORKER_START)
    phases["other"] = max(0.0, time.perf_counter() - clock - inside)
    splits = describe_splits(data, cfg.eval.label_fractions)
    tune.report(dict(final_report(result, ctx, identity, artifacts, phases, splits)))
    _reported()


def _ray_node() -> dict[str, Any]:
    """The Ray node this trial runs on (several nodes can share a host, and an IP) and the GPUs
    it was given there."""
    import ray

    return {
        "node_ip": ray.util.get_node_ip_address(),
        "ray_node_id": ray.get_runtime_context().get_node_id(),
        GPU_IDS: ray_gpu_ids(),
    }


def ray_gpu_ids() -> list[str]:
    """The GPU ids Ray assigned to the calling task or actor, sorted; empty when it holds no GPU
    share. With CUDA_VISIBLE_DEVICES set when its node started (docker/ray-worker.sh, the
    loopback cluster's --gpus-per-worker) they are that node's device numbers: they name a
    device only together with the node (ray_node_id)."""
    import ray

    return sorted(ray.get_runtime_context().get_accelerator_ids().get("GPU", []))
