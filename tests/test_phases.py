"""Where a trial's time goes: a tiny trial records every phase (within its wall time) without
printing anything, the driver stores them with its own storage time, the report's phase table
is rendered from the stored values. (`python -m sidae.train` prints a line for each long phase:
tests/test_train.py, in its one run of the command.)"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.utils.util import flatten_dict

from sidae.config import SidAEConfig
from sidae.experiment import RunResult
from storage import make_artifact_store
from studies import report
from studies.analysis.phases import phase_rows, phase_section
from studies.analysis.summary import complete_trials
from studies.record import PHASE_SECONDS, STORAGE, WORKER_START, TrialIdentity
from studies.service import trainable
from studies.service.budgets import BUDGETS
from studies.service.search import StudySearch, TrialIndex
from studies.service.trainable import TrialContext, final_report, process_start_time
from tests.multiseed_study import write_study

TINY_TRIAL = {
    "data.train_limit": 256,
    "data.val_size": 200,
    "eval.knn_bank_size": 300,
    "optim.epochs": 2,
    "optim.batch_size": 64,
    "eval.label_fractions": (0.01,),
    "eval.finetune": True,
    "eval.finetune_steps": 3,
}
RUN_PHASES = {
    "model_setup",
    "pretrain",
    "monitor",
    "checkpoint",
    "report",
    "eval_features",
    "linear_probes",
    "finetune",
    "results_file",
}


def test_a_trial_records_every_phase_within_its_wall_time(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr("ray.tune.report", reports.append)
    monkeypatch.setattr(trainable, "_ray_node", lambda: {"node_ip": "127.0.0.1", "ray_node_id": "n"})
    monkeypatch.setattr(trainable, "_last_report", None)  # the process's first trial
    ctx = TrialContext(
        dataset="mnist",
        budget=BUDGETS["smoke"],
        data_dir=str(mnist_dir),
        run_root=str(tmp_path / "runs"),
        fixed=TINY_TRIAL,
    )
    start = time.perf_counter()
    trainable.train_trial({"w": 0.5}, ctx)
    wall = time.perf_counter() - start

    assert capfd.readouterr().err == ""  # trials run with progress off: silent
    assert [r["final"] for r in reports] == [False, True]
    final = reports[-1]
    phases = final[PHASE_SECONDS]
    assert RUN_PHASES | {WORKER_START, "data_load", "save_files", "other"} <= set(phases)
    assert all(seconds >= 0 for seconds in phases.values())
    inside = sum(seconds for phase, seconds in phases.items() if phase != WORKER_START)
    assert inside <= wall + 0.01  # rounded to ms each
    assert phases["pretrain"] == pytest.approx(final["train_seconds_total"], abs=0.01)
    started = process_start_time()
    assert started is not None and phases[WORKER_START] >= time.time() - wall - started - 1  # since the process began
    run = json.loads((Path(final["run_dir"]) / "results.json").read_text())
    assert RUN_PHASES - {"results_file"} <= set(run["phase_seconds"])
    assert sum(run["phase_seconds"].values()) <= run["wall_seconds"]

    trainable.train_trial({"w": 0.5}, ctx)  # the same process again: a reused actor
    assert reports[-1][PHASE_SECONDS][WORKER_START] < 5  # the gap since the last report, not the process's age


def test_the_driver_stores_the_phases_with_its_storage_time(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", direction="maximize")
    search = StudySearch(
        study,
        lambda trial: trial.suggest_float("w", 0.0, 1.0),
        artifact_store=make_artifact_store(tmp_path / "artifacts"),
        index=TrialIndex(),
        run_root=tmp_path.parent,
    )
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"\x89PNG not really")
    metrics = {
        "epoch": 1,
        "knn_acc": 0.2,
        "collapse_std": 0.02,
        "loss": -0.5,
        "loss_siam": -0.6,
        "loss_rec": 0.1,
        "train_seconds": 1.5,
        "images_per_second": 100.0,
    }
    result = RunResult(
        config=SidAEConfig(),
        history=[metrics],
        knn=0.6,
        linear={"0.01": 0.7},
        val_linear={"0.01": 0.3},
        phase_seconds={"pretrain": 1.5, "finetune": 2.25},
    )
    identity = TrialIdentity(node="h", node_ip="10.0.0.1", ray_node_id="n", pid=1, run_dir=str(tmp_path))
    ctx = TrialContext(dataset="mnist", budget=BUDGETS["cpu"], data_dir=str(tmp_path), run_root=str(tmp_path))
    phases = {WORKER_START: 3.0, "data_load": 0.5, **result.phase_seconds, "save_files": 0.1, "other": 0.0123456}
    report_ = final_report(result, ctx, identity, {"reconstructions": str(grid)}, phases)
    assert report_[PHASE_SECONDS]["other"] == 0.012  # milliseconds
    assert final_report(result, ctx, identity, {})[PHASE_SECONDS] == {"pretrain": 1.5, "finetune": 2.25}

    search.suggest("t1")
    search.on_trial_complete("t1", flatten_dict(dict(report_)))  # Tune flattens nested dicts
    trial = search.study.trials[0]
    assert trial.state == TrialState.COMPLETE
    stored = trial.user_attrs[PHASE_SECONDS]
    assert {k: v for k, v in stored.items() if k != STORAGE} == report_[PHASE_SECONDS]
    assert 0 <= stored[STORAGE] < 5 and "artifact:reconstructions" in trial.user_attrs


PHASES = {
    seed: {
        WORKER_START: 5.0,
        "data_load": 3.0,
        "pretrain": 50.0 + 10 * seed,
        "monitor": 6.0,
        "linear_probes": 10.0,
        "finetune": 15.0,
        STORAGE: 1.0,
    }
    for seed in (0, 1, 2)
}
TABLE = [  # mean seconds over the 12 complete trials (the pruned one has none); total 100 s
    ["phase", "what", "mean s", "share"],
    ["worker_start", "worker start (process, or reused actor's gap)", "5.0", "5.0 %"],
    ["data_load", "data load", "3.0", "3.0 %"],
    ["pretrain", "pre-training epochs", "60.0", "60.0 %"],
    ["monitor", "per-epoch kNN monitor", "6.0", "6.0 %"],
    ["linear_probes", "linear probes", "10.0", "10.0 %"],
    ["finetune", "fine-tuning", "15.0", "15.0 %"],
    ["storage", "storage and artifacts (driver)", "1.0", "1.0 %"],
    ["total", "", "100.0", "100.0 %"],
]


def table_rows(lines: list[str]) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in lines
        if line.startswith("|") and not line.startswith("|---")
    ]


def test_the_phase_table_is_rendered_from_the_stored_values(tmp_path: Path) -> None:
    study = write_study(f"sqlite:///{tmp_path / 'study.db'}", "phases", phases=PHASES)
    trials = complete_trials(study)
    assert phase_rows(trials)[2] == ("pretrain", 60.0, 0.6)
    section = phase_section(trials)
    assert section[0] == "## Where the trials' time went"
    assert table_rows(section) == TABLE
    assert any(
        "Over 12 complete trial(s)" in line and "fine-tuning: 85.0 % of the trial time" in line for line in section
    )


def test_a_study_stored_without_phases_has_no_table(tmp_path: Path) -> None:
    study = write_study(f"sqlite:///{tmp_path / 'study.db'}", "old")
    assert phase_section(complete_trials(study)) == []


def test_the_report_has_the_phase_section(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    write_study(url, "phases", phases=PHASES)
    assert report.main(["--name", "phases", "--storage", url, "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert table_rows(text.split("## Where the trials' time went")[1].split("\n## ")[0].splitlines()) == TABLE
