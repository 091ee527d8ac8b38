"""The study's best-model artifact (studies.service.runner.store_best_model) is the weights of the
COMPLETE trial with the highest objective, and follows it when a better trial completes. No Ray:
trials are written through Optuna's public API."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.artifacts import get_all_artifact_meta

from storage import make_artifact_store
from studies.service.runner import store_best_model


def finished(study: optuna.Study, run_root: Path, value: float, state: optuna.trial.TrialState) -> int:
    trial = study.ask()
    run_dir = run_root / f"trial-{trial.number}"
    run_dir.mkdir(parents=True)
    (run_dir / "model.pt").write_bytes(f"weights of trial {trial.number}".encode())
    trial.set_user_attr("run_dir", str(run_dir))
    if state == optuna.trial.TrialState.PRUNED:
        trial.report(value, 1)  # Optuna gives a PRUNED trial its last intermediate value
    study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return trial.number


def stored_weights(study: optuna.Study, artifacts: Path) -> dict[str, bytes]:
    return {meta.filename: (artifacts / meta.artifact_id).read_bytes() for meta in get_all_artifact_meta(study)}


def test_the_best_model_is_the_best_complete_trials_and_follows_a_better_one(tmp_path: Path) -> None:
    run_root, artifacts = tmp_path / "runs" / "s", tmp_path / "artifacts"
    store = make_artifact_store(artifacts)
    study = optuna.create_study(study_name="s", direction="maximize")
    complete, pruned = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
    finished(study, run_root, 0.70, complete)
    best = finished(study, run_root, 0.90, complete)
    finished(study, run_root, 0.80, complete)  # the latest is not the best
    stopped = finished(study, run_root, 0.99, pruned)
    assert study.trials[stopped].value == 0.99  # higher, but not COMPLETE
    store_best_model(study, store, run_root)
    assert study.user_attrs["best_model_trial"] == best == study.best_trial.number == 1
    assert stored_weights(study, artifacts) == {"best-trial-1-model.pt": b"weights of trial 1"}
    # served as bytes: the system's mime.types may call ".pt" a SNES page table
    assert [meta.mimetype for meta in get_all_artifact_meta(study)] == ["application/octet-stream"]

    store_best_model(study, store, run_root)  # the same best: nothing stored again
    assert len(get_all_artifact_meta(study)) == 1

    better = finished(study, run_root, 0.95, complete)
    store_best_model(study, store, run_root)
    assert study.user_attrs["best_model_trial"] == better
    assert stored_weights(study, artifacts)[f"best-trial-{better}-model.pt"] == f"weights of trial {better}".encode()
