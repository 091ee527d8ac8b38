"""What the driver stores for a trial, without Ray running: the trainable's final report
(studies.service.trainable.final_report) and the searcher (studies.service.search.StudySearch)
driven the way Ray Tune drives it (suggest, on_trial_result, on_trial_complete with results
flattened on "/"), on a real in-memory Optuna study."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.utils.util import flatten_dict

from sidae.config import SidAEConfig
from sidae.experiment import RunResult
from storage import StorageError, make_artifact_store
from studies.record import TrialIdentity
from studies.service.budgets import BUDGETS
from studies.service.reconcile import is_done
from studies.service.search import StudySearch, StudyStopper, TrialIndex
from studies.service.trainable import TrialContext, epoch_report, final_report, finished_run

VAL = {"0.01": 0.31, "0.1": 0.52}  # validation linear probe: the objective
TEST = {"0.01": 0.71, "0.1": 0.82}  # test-set linear probe: a user attribute, never the objective
KNN = (0.21, 0.27)  # validation kNN accuracy after epochs 1 and 2: the learning curve


def metrics(epoch: int) -> dict[str, float]:
    return {
        "epoch": epoch,
        "knn_acc": KNN[epoch - 1],
        "collapse_std": 0.02 * epoch,
        "loss": -0.5 * epoch,
        "loss_siam": -0.6 * epoch,
        "loss_rec": 0.1 / epoch,
        "train_seconds": 1.5 * epoch,
        "images_per_second": 100.0 * epoch,
    }


def run_dir(tmp_path: Path) -> Path:
    """The run folder of every trial here."""
    return tmp_path / "runs" / "abc"


def identity(tmp_path: Path) -> TrialIdentity:
    return TrialIdentity(
        node="host-a", node_ip="10.0.0.7", ray_node_id="node-7", pid=4242, run_dir=str(run_dir(tmp_path))
    )


def run_result(seed: int = 3) -> RunResult:
    return RunResult(
        config=SidAEConfig(seed=seed),
        history=[metrics(1), metrics(2)],
        knn=0.66,
        linear=dict(TEST),
        val_linear=dict(VAL),
        finetune={"0.01": 0.75, "0.1": 0.85},
        device="cpu",
        wall_seconds=9.5,
    )


def context(tmp_path: Path, primary_fraction: float = 0.01) -> TrialContext:
    return TrialContext(
        dataset="mnist",
        budget=dataclasses.replace(BUDGETS["cpu"], primary_fraction=primary_fraction),
        data_dir=str(tmp_path),
        run_root=str(tmp_path / "runs"),
    )


def final(tmp_path: Path, artifacts: dict[str, str] | None = None) -> dict[str, Any]:
    """The final report as Tune hands it to on_trial_complete: flattened on "/"."""
    report = final_report(run_result(), context(tmp_path), identity(tmp_path), artifacts or {})
    return flatten_dict(dict(report))


def epoch(tmp_path: Path, number: int) -> dict[str, Any]:
    return flatten_dict(dict(epoch_report(metrics(number), identity(tmp_path))))


def w_space(trial: optuna.Trial) -> None:
    trial.suggest_float("w", 0.0, 1.0)


def searcher(tmp_path: Path, time_budget_s: float | None = 3600.0, index: TrialIndex | None = None) -> StudySearch:
    study = optuna.create_study(study_name="s", direction="maximize")
    return StudySearch(
        study,
        w_space,
        artifact_store=make_artifact_store(tmp_path / "artifacts"),
        index=index or TrialIndex(),
        run_root=tmp_path / "runs",
        time_budget_s=time_budget_s,
    )


# --- the objective ---------------------------------------------------------------------------


@pytest.mark.parametrize(("primary", "objective"), [(0.01, 0.31), (0.1, 0.52)])
def test_final_report_objective_is_the_validation_probe_at_the_primary_fraction(
    tmp_path: Path, primary: float, objective: float
) -> None:
    report = final_report(run_result(), context(tmp_path, primary), identity(tmp_path), {"model": "m.pt"})
    assert report["objective"] == objective  # validation, not TEST[...]
    assert report["final"] is True
    assert report["val_linear"] == VAL and report["test_linear"] == TEST
    assert report["test_finetune"] == {"0.01": 0.75, "0.1": 0.85} and report["test_knn"] == 0.66
    assert report["epoch"] == 2 and report["knn_acc"] == KNN[1]  # the last epoch's metrics
    assert report["epochs_done"] == 2 and report["train_seconds_total"] == 1.5 + 3.0
    assert report["seed"] == 3 and report["device"] == "cpu" and report["wall_seconds"] == 9.5
    assert report["node"] == "host-a" and report["artifacts"] == {"model": "m.pt"}


def test_epoch_report_carries_no_objective(tmp_path: Path) -> None:
    report = epoch_report(metrics(1), identity(tmp_path))
    assert report["final"] is False and report["objective"] is None
    assert report["knn_acc"] == KNN[0] and report["run_dir"] == identity(tmp_path)["run_dir"]


# --- the searcher ----------------------------------------------------------------------------


def test_a_finished_trial_is_complete_with_the_validation_objective(tmp_path: Path) -> None:
    grid = tmp_path / "runs" / "abc" / "reconstructions.png"
    grid.parent.mkdir(parents=True)
    grid.write_bytes(b"\x89PNG not really")
    search = searcher(tmp_path)
    config = search.suggest("t1")
    assert set(config) == {"w"} and 0.0 <= config["w"] <= 1.0
    search.on_trial_result("t1", epoch(tmp_path, 1))
    search.on_trial_result("t1", epoch(tmp_path, 1))  # a repeated epoch is one intermediate value
    search.on_trial_complete("t1", final(tmp_path, {"reconstructions": str(grid)}))

    trial = search.study.trials[0]
    assert trial.state == TrialState.COMPLETE and search.outcomes == {"t1": TrialState.COMPLETE}
    assert trial.value == VAL["0.01"]
    assert trial.params == config
    assert trial.intermediate_values == {1: KNN[0], 2: KNN[1]}  # kNN per epoch, the final one included
    attrs = trial.user_attrs
    assert attrs["test_linear"] == TEST and attrs["val_linear"] == VAL  # nested again, not "test_linear/0.01"
    assert not [key for key in attrs if "/" in key]
    assert attrs["test_finetune"] == {"0.01": 0.75, "0.1": 0.85} and attrs["test_knn"] == 0.66
    assert attrs["seed"] == 3 and attrs["epochs_done"] == 2 and attrs["train_seconds_total"] == 4.5
    assert attrs["ray_trial_id"] == "t1" and attrs["node"] == "host-a" and attrs["pid"] == 4242
    assert attrs["run_dir"] == str(tmp_path / "runs" / "abc")
    stored = tmp_path / "artifacts" / attrs["artifact:reconstructions"]
    assert stored.read_bytes() == grid.read_bytes()

    search.on_trial_complete("t1", None, error=True)  # Tune telling twice changes nothing
    assert search.study.trials[0].state == TrialState.COMPLETE


def test_a_trial_stopped_before_its_evaluation_is_pruned_by_the_scheduler(tmp_path: Path) -> None:
    search = searcher(tmp_path)
    search.suggest("t1")
    search.on_trial_result("t1", epoch(tmp_path, 1))
    search.on_trial_complete("t1", epoch(tmp_path, 2))  # ASHA's stopping result, withheld from on_trial_result
    trial = search.study.trials[0]
    assert trial.state == TrialState.PRUNED and trial.user_attrs["stopped_by"] == "scheduler"
    assert trial.value == KNN[1]  # Optuna's tell gives a PRUNED trial its last intermediate value
    assert trial.intermediate_values == {1: KNN[0], 2: KNN[1]}
    assert "test_linear" not in trial.user_attrs


def test_a_trial_stopped_past_the_deadline_is_pruned_by_the_time_budget(tmp_path: Path) -> None:
    search = searcher(tmp_path, time_budget_s=0.0)
    search.suggest("t1")
    search.on_trial_result("t1", epoch(tmp_path, 1))
    search.on_trial_complete("t1", epoch(tmp_path, 2))
    trial = search.study.trials[0]
    assert trial.state == TrialState.PRUNED and trial.user_attrs["stopped_by"] == "time-budget"


def test_a_finished_trial_is_complete_even_past_the_deadline(tmp_path: Path) -> None:
    search = searcher(tmp_path, time_budget_s=0.0)
    search.suggest("t1")
    search.on_trial_complete("t1", final(tmp_path))
    trial = search.study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.value == VAL["0.01"]
    assert "stopped_by" not in trial.user_attrs


def test_a_raising_trial_fails_with_the_last_line_of_its_error(tmp_path: Path) -> None:
    error_file = tmp_path / "error.txt"
    error_file.write_text(  # the tail of a real Ray Tune error.txt
        "Failure # 1 (occurred at 2026-12-02_09-18-53)\n"
        "ray::ImplicitFunc.train() (pid=29801, ip=10.0.0.7, actor_id=a1, repr=train_trial)\n"
        '  File "/work/main/sidae/pretraining.py", line 153, in _epoch\n'
        '    raise TrainingDiverged(f"loss is {loss} in epoch {epoch + 1}; lower the learning rate")\n'
        "sidae.pretraining.TrainingDiverged: loss is nan in epoch 1; lower the learning rate\n\n"
    )
    index = TrialIndex()
    search = searcher(tmp_path, index=index)
    search.suggest("t1")
    search.suggest("t2")
    index.by_id["t1"] = SimpleNamespace(error_file=str(error_file), path=str(tmp_path))  # type: ignore[assignment]
    search.on_trial_result("t1", epoch(tmp_path, 1))
    search.on_trial_complete("t1", None, error=True)
    search.on_trial_complete("t2", None, error=True)  # its actor never started: no Trial, no file
    first, second = search.study.trials
    assert first.state == TrialState.FAIL and first.value is None
    assert first.user_attrs["fail_reason"] == (
        "sidae.pretraining.TrainingDiverged: loss is nan in epoch 1; lower the learning rate"
    )
    assert first.user_attrs["ray_logdir"] == str(tmp_path) and first.intermediate_values == {1: KNN[0]}
    assert second.state == TrialState.FAIL
    assert second.user_attrs["fail_reason"] == "unknown error (no error file)"


@pytest.mark.parametrize("stopped_by", ["time-budget", "interrupted"])
def test_trials_tune_never_finished_end_pruned_saying_why(tmp_path: Path, stopped_by: str) -> None:
    search = searcher(tmp_path)
    for trial_id in ("done", "cut", "never-started"):
        search.suggest(trial_id)
    search.on_trial_complete("done", final(tmp_path))
    search.on_trial_result("cut", epoch(tmp_path, 1))
    search.end_unfinished(stopped_by)  # Tune returned at the time budget, or raised
    done, cut, never = search.study.trials
    assert done.state == TrialState.COMPLETE and "stopped_by" not in done.user_attrs
    for trial in (cut, never):
        assert trial.state == TrialState.PRUNED and trial.user_attrs["stopped_by"] == stopped_by
        assert not is_done(trial)  # the next start runs its configuration again
    assert cut.intermediate_values == {1: KNN[0]}
    assert set(search.outcomes) == {"done", "cut", "never-started"}
    search.end_unfinished()  # again: nothing left RUNNING, nothing told twice
    assert [t.state for t in search.study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]


@pytest.mark.parametrize(
    ("failure", "warning"),
    [
        ("missing file", "not a file in its run folder"),
        ("outside the run folder", "not a file in its run folder"),
        ("link out of the run folder", "not a file in its run folder"),
        ("a run folder not the study's", "not a file in its run folder"),
        ("unwritable store", "could not store artifact"),
    ],
)
def test_an_artifact_that_cannot_be_stored_loses_the_picture_not_the_trial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: str, warning: str
) -> None:
    """Only files inside the trial's own run folder are uploaded: a report naming another file
    (a worker's mistake, or anyone holding the Ray token) cannot make the dashboard serve it."""
    run_dir(tmp_path).mkdir(parents=True)
    grid = run_dir(tmp_path) / "reconstructions.png"
    search = searcher(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    if failure == "missing file":
        grid = run_dir(tmp_path) / "gone" / "reconstructions.png"
    elif failure == "outside the run folder":
        grid = secret
    elif failure == "link out of the run folder":
        grid.symlink_to(secret)
    elif failure == "a run folder not the study's":
        grid = secret  # in the folder the report names as its run folder, which is no study's
    else:
        grid.write_bytes(b"png")
        store = tmp_path / "artifacts"
        for path in store.iterdir():
            path.unlink()
        store.rmdir()
        store.write_text("a file where the artifact folder was")  # every write under it fails
    search.suggest("t1")
    report = final(tmp_path, {"reconstructions": str(grid)})
    if failure == "a run folder not the study's":
        report["run_dir"] = str(tmp_path)
    with caplog.at_level(logging.WARNING, logger="studies.service.search"):
        search.on_trial_complete("t1", report)
    trial = search.study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.value == VAL["0.01"]
    assert trial.user_attrs["test_linear"] == TEST
    assert "artifact:reconstructions" not in trial.user_attrs
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warning in warnings[0].getMessage()
    assert str(grid) in warnings[0].getMessage()
    assert not [path for path in (tmp_path / "artifacts").glob("*") if path.read_bytes() == b"password"]


def test_a_chained_error_is_reported_by_its_last_exception(tmp_path: Path) -> None:
    from studies.service.search import error_line

    error_file = tmp_path / "error.txt"
    error_file.write_text(
        "Failure # 1 (occurred at 2026-12-02_09-18-53)\n"
        '  File "/work/main/sidae/pretraining.py", line 150, in _epoch\n'
        "ValueError: cannot convert float NaN to integer\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        '  File "/work/main/sidae/pretraining.py", line 153, in _epoch\n'
        "sidae.pretraining.TrainingDiverged: loss is nan in epoch 1; lower the learning rate\n"
    )
    trial = SimpleNamespace(error_file=str(error_file))
    assert error_line(trial).startswith("sidae.pretraining.TrainingDiverged")  # type: ignore[arg-type]


def test_an_error_while_recording_stops_the_study_instead_of_reaching_tune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tune would print a traceback for an error raised in on_trial_result, and rerun the trial
    from scratch for one raised in on_trial_complete: the searcher keeps the error, writes
    nothing more, and its stopper ends the experiment."""
    search = searcher(tmp_path)
    stopper = StudyStopper(search)
    search.suggest("t1")
    assert not stopper.stop_all()
    lost = StorageError("database unreachable for 300 s (during set_trial_intermediate_value): refused")

    def refuse(*args: object) -> None:
        raise lost

    monkeypatch.setattr(optuna.Trial, "report", refuse)
    search.on_trial_result("t1", epoch(tmp_path, 1))  # raises nothing
    assert search.failure is lost and stopper.stop_all()
    monkeypatch.undo()
    search.on_trial_complete("t1", final(tmp_path))
    assert search.suggest("t2") == Searcher.FINISHED
    (trial,) = search.study.trials  # nothing asked, nothing told after the error
    assert trial.state == TrialState.RUNNING and not trial.intermediate_values and search.outcomes == {}


def test_the_stopper_stops_a_trial_whose_features_collapsed(tmp_path: Path) -> None:
    stopper = StudyStopper(searcher(tmp_path), min_collapse_std=0.05)
    assert stopper("t1", {"collapse_std": 0.01}) and not stopper("t1", {"collapse_std": 0.2})
    assert not StudyStopper(searcher(tmp_path))("t1", {"collapse_std": 0.0})  # 0: off


@pytest.mark.parametrize("damage", ["", "no weights", "another config", "corrupt results"])
def test_a_finished_trial_folder_is_reused_only_when_whole_and_of_this_config(tmp_path: Path, damage: str) -> None:
    folder = run_dir(tmp_path)
    folder.mkdir(parents=True)
    result = run_result()
    (folder / "results.json").write_text(json.dumps(result.to_dict()))
    for name in ("reconstructions.png", "model.pt"):
        (folder / name).write_bytes(b"kept")
    cfg = result.config
    if damage == "no weights":
        (folder / "model.pt").unlink()
    elif damage == "another config":
        cfg = SidAEConfig(seed=4)
    elif damage == "corrupt results":
        (folder / "results.json").write_text('{"config": ')
    found = finished_run(cfg, folder)
    if damage:
        assert found is None
        return
    assert found is not None
    reused, artifacts = found
    assert reused.to_dict() == result.to_dict()
    assert artifacts == {"reconstructions": str(folder / "reconstructions.png"), "model": str(folder / "model.pt")}


def test_the_searcher_pickles_to_its_studys_name_alone(tmp_path: Path) -> None:
    """What Ray writes into its experiment folder: the study's name, not its storage URL."""
    import pickle

    url = f"sqlite:///{tmp_path / 'private-name.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    search = StudySearch(
        study,
        w_space,
        artifact_store=make_artifact_store(tmp_path / "artifacts"),
        index=TrialIndex(),
        run_root=tmp_path / "runs",
    )
    search.suggest("t1")
    written = pickle.dumps(search)
    assert b"private-name" not in written and b"artifacts" not in written
    assert pickle.loads(written).study_name == "s"
