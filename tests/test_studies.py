"""The study service end to end: real Ray (local), real Optuna storage (SQLite, PostgreSQL),
real MNIST. Each smoke study here trains tiny trials for a few seconds each; the shared smoke
study and the refused input below run as a user's process, the others in the test's process."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from studies.service.catalogue import W_SWEEP_DISTRIBUTIONS
from studies.service.reconcile import trials_to_start
from tests.postgres import PostgresServer
from tests.smoke_study import (
    FIXTURE_OPTIONS,
    ONE_AT_A_TIME,
    QUICK,
    InProcess,
    SmokeStudy,
    main_in_process,
    run_cli,
)


def load(url: str, name: str = "w-sweep-mnist") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


@pytest.mark.slow
def test_smoke_w_sweep_on_sqlite_then_resume(
    smoke_study: SmokeStudy, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    url = smoke_study.url
    study = load(url)
    # the smoke budget's design: every w on pilot seed 0, then the chosen w (0.5, the only inner
    # one) and both baselines on fresh seeds 1 and 2
    assert sorted((t.params["seed"], t.params["w"]) for t in study.trials) == [
        (seed, w) for seed in (0, 1, 2) for w in (0.0, 0.5, 1.0)
    ]
    assert study.user_attrs["design"]["confirm_seeds"] == [1, 2] and study.user_attrs["chosen_w"] == 0.5
    assert study.metric_names == ["validation linear probe, 1% labels"]  # the dashboard's name for the value
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        assert sorted(trial.intermediate_values) == [1, 2]  # validation kNN accuracy per epoch
        assert 0.1 < trial.value <= 1.0  # validation linear probe at 1 % labels, above chance
        attrs = trial.user_attrs
        assert set(attrs["test_linear"]) == {"0.01"}  # the fixture probes at 1 % only (QUICK)
        assert attrs["seed"] == trial.params["seed"] and attrs["device"] == "cpu" and attrs["wall_seconds"] > 0
        assert attrs["ray_trial_id"] and attrs["ray_node_id"] and Path(attrs["ray_logdir"]).is_dir()
        assert "artifact:reconstructions" in attrs
        assert any(k.startswith("artifacts:") for k in trial.system_attrs)  # what the dashboard lists
    out = smoke_study.stdout
    assert "SimSiam" in out and "DAE" in out and f"browse: {sys.executable} -m studies.cli.dashboard --storage" in out
    # the split sizes the trials saw (--train-limit 512, the smoke budget's 1,000 validation images)
    assert re.search(
        r": 512 pre-training, [\d,]+ labelled pool, 1,000 validation, 10,000 test images; "
        r"labelled images per fraction: 1 % = [\d,]+$",
        out,
        re.MULTILINE,
    ), out
    assert all(trial.user_attrs["splits"] in out for trial in study.trials)
    assert study.user_attrs["best_model_trial"] == max(study.trials, key=lambda t: t.value).number  # all COMPLETE
    # the pilot's trials (seed 0) only choose w: they and their seed do not fine-tune; the fresh seeds' do
    assert all(bool(t.user_attrs.get("test_finetune")) == (t.params["seed"] != 0) for t in study.trials)
    supervised = study.user_attrs["supervised_finetune"]  # fine-tuned from scratch, per seed
    assert set(supervised) == {"1", "2"} and all(set(per) == {"0.01"} for per in supervised.values())
    assert all(0.1 < acc <= 1 for per in supervised.values() for acc in per.values())
    assert "supervised" in out
    controls = study.user_attrs["controls"]  # the untrained encoder and raw pixels, probed per seed
    assert set(controls) == {"0", "1", "2"} and set(controls["0"]) == {"untrained", "pixels"}
    assert all(set(scores) == {"0.01"} for per in controls.values() for scores in per.values())
    assert all(per["pixels"]["0.01"] > 0.75 for per in controls.values())  # 589 labels: 84 % in the README's run
    assert "untrained encoder" in out and "raw pixels" in out  # rows of the terminal's linear table
    assert re.search(
        r"primary verdict \(SidAE at w=0\.5, chosen on pilot seeds, test linear probe at 1% labels, 2 fresh seeds\): "
        r"(HOLDS|REVERSED|NOT SHOWN|VOID)",
        out,
    ), out
    assert "false holds <= 0.05" in out and "over the untrained encoder" in out

    # The same name with other settings would mix two configurations' trials: refused, nothing
    # written. The fixture fine-tuned (--set eval.finetune=True ...); QUICK alone does not.
    for other, named in (
        (
            ["--budget", "cpu"],
            "holds trials of budget smoke (this run: cpu); choose another --name, e.g. --name w-sweep-mnist-cpu",
        ),
        (QUICK, "holds trials run with eval.finetune=True (this run: False); choose another --name"),
    ):
        code, _, err = main_in_process(
            "--study", "w-sweep", *other, "--storage", url,
            cwd=smoke_study.folder, data_dir=mnist_dir, monkeypatch=monkeypatch, capfd=capfd,
        )  # fmt: skip
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and named in err, err
    assert len(load(url).trials) == 9 and load(url).user_attrs["budget"] == "smoke"

    code, _, err = main_in_process(
        "--study", "w-sweep", *FIXTURE_OPTIONS, "--storage", url,
        cwd=smoke_study.folder, data_dir=mnist_dir, monkeypatch=monkeypatch, capfd=capfd,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    assert "nothing left to run" in err
    assert len(load(url).trials) == 9


@pytest.mark.slow
def test_a_point_whose_driver_was_killed_twice_still_runs(tmp_path: Path, study_in_process: InProcess) -> None:
    """What drivers killed mid-trial leave behind: a RUNNING trial of a grid point, twice over
    (the second driver's start marked the first FAIL and queued the point again, then died with
    it under way). Two failures exceed --max-retries 1, but being interrupted is not failing."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name="w-sweep-mnist", storage=storage, direction="maximize")
    study.set_user_attr("study", "w-sweep")
    study.set_user_attr("dataset", "mnist")
    point = {"seed": 0, "w": 0.5}
    study.enqueue_trial(point)
    orphans = [study.ask(W_SWEEP_DISTRIBUTIONS)]  # the first driver's, RUNNING
    trials_to_start(study, storage, [point], trials=0, max_retries=1)  # the second driver's start
    orphans.append(study.ask(W_SWEEP_DISTRIBUTIONS))  # its run of the point, RUNNING when it died
    # two grid points: the orphans' and one never run
    grid = ["--w-grid", "0,0.5", "--max-retries", "1", *ONE_AT_A_TIME]
    code, _, err = study_in_process("--study", "w-sweep", *QUICK, *grid, "--storage", url)
    assert code == 0, err[-3000:]
    trials = load(url).trials
    for orphan in orphans:
        assert trials[orphan.number].state == TrialState.FAIL and trials[orphan.number].params == point
        assert "driver" in trials[orphan.number].user_attrs["fail_reason"]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["w"] for t in complete) == [0.0, 0.5]
    assert not [t for t in trials if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_early_stopped_trials_end_pruned_and_raising_trials_fail(tmp_path: Path, study_in_process: InProcess) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    # Every healthy trial's collapse indicator is far below 1: each is stopped after epoch 1.
    code, _, err = study_in_process(
        "--study",
        "noise-sweep",
        *QUICK,
        *ONE_AT_A_TIME,
        "--trials",
        "2",
        "--min-collapse-std",
        "1.0",
        "--storage",
        url,
    )
    assert code == 0, err[-3000:]
    trials = load(url, "noise-sweep-mnist").trials
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    assert all(sorted(t.intermediate_values) == [1] for t in trials)

    code, _, err = study_in_process(
        "--study",
        "augment-search",
        *QUICK,
        "--trials",
        "1",
        "--set",
        "optim.optimizer=sgd",
        "--set",
        "optim.base_lr=1e12",
        "--storage",
        url,
    )
    assert code == 0, err[-3000:]
    trial = load(url, "augment-search-mnist").trials[0]
    assert trial.state == TrialState.FAIL
    assert "TrainingDiverged" in trial.user_attrs["fail_reason"] and "learning rate" in trial.user_attrs["fail_reason"]


@pytest.mark.slow
def test_smoke_w_sweep_on_postgresql(
    tmp_path: Path, postgres_server: PostgresServer, study_in_process: InProcess
) -> None:
    postgres_url = postgres_server.url
    code, out, err = study_in_process(
        "--study",
        "w-sweep",
        *QUICK,
        "--w-grid",
        "0,1",  # two trials at once, both writing to the server
        "--storage",
        postgres_url,
        "--name",
        "w-sweep-pg",
        "--artifact-dir",
        str(tmp_path / "artifacts"),
    )
    assert code == 0, err[-3000:]
    study = load(postgres_url, "w-sweep-pg")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(len(t.intermediate_values) == 2 for t in study.trials)
    # no secret at rest: not in the artifacts, trial folders, Ray's experiment state, or output
    password = postgres_server.password_file.read_text().strip().rsplit(":", 1)[1].encode()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any("ray" in p.parts for p in written) and any(p.suffix == ".pkl" for p in written)  # Ray's state
    assert not [p for p in written if password in p.read_bytes()]
    assert password.decode() not in out + err


def test_list(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, err = main_in_process("--list", cwd=tmp_path, data_dir=mnist_dir, monkeypatch=monkeypatch, capfd=capfd)
    assert code == 0 and err == ""
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["w-sweep", "noised-simsiam", "noise-sweep", "augment-search", "joint"]


def assert_one_line_error(code: int, stderr: str, message: str, work: Path) -> None:
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert "secret" not in stderr
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--study", "x-sweep"], "unknown study 'x-sweep'"),
        (["--study", "w-sweep", "--dataset", "svhn"], "unknown dataset 'svhn'"),
        (["--study", "w-sweep", "--storage", "sqlite//nope.db"], "not a storage URL"),
        (
            ["--study", "w-sweep", "--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/db"],
            "cannot reach PostgreSQL",
        ),
        (["--study", "w-sweep", "--set", "w=0.5"], "clashes with a parameter"),
        (["--study", "noise-sweep", "--set", "w=3"], "w must be in [0, 1]"),
        (["--study", "noise-sweep", "--set", "w=abc"], "w expects a number, got 'abc'"),
        (["--study", "w-sweep", "--set", "eval.label_fractions=0.5"], "eval.label_fractions expects a list"),
        (["--study", "w-sweep", "--set", "optim.epochs=2.5"], "optim.epochs expects a whole number, got 2.5"),
        (["--study", "w-sweep", "--set", "data.dataset=cifar10"], "would silently override --dataset"),
        (
            ["--study", "w-sweep", "--seeds", "-1"],
            "argument --seeds: must be a whole number >= 0 and <= 4294967295, got -1",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path,
    mnist_dir: Path,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, _, err = main_in_process(
        *args, "--budget", "smoke", cwd=work, data_dir=mnist_dir, monkeypatch=monkeypatch, capfd=capfd
    )
    assert_one_line_error(code, err, message, work)


@pytest.mark.slow
def test_bad_input_is_one_line_from_the_real_command_line(tmp_path: Path, mnist_dir: Path) -> None:
    """One of the cases above as a user's process runs it (a fresh interpreter: its imports,
    warnings and logging print what they print): still one line, no password, nothing written."""
    work = tmp_path / "work"
    work.mkdir()
    url = "postgresql+psycopg://u:secret@127.0.0.1:1/db"
    done = run_cli("--study", "w-sweep", "--storage", url, "--budget", "smoke", cwd=work, data_dir=mnist_dir)
    assert_one_line_error(done.returncode, done.stderr, "cannot reach PostgreSQL", work)


def test_budget_overrides() -> None:
    from studies.service.options import StudyError, StudyOptions, resolve_budget

    budget = resolve_budget(
        StudyOptions(study="w-sweep", budget="cpu", epochs=5, w_grid=(0.0, 0.9, 0.9, 1.0), seeds=(3,))
    )
    assert (budget.epochs, budget.w_grid, budget.seeds) == (5, (0.0, 0.9, 1.0), (3,))
    with pytest.raises(StudyError, match="--w-grid values must be in"):
        resolve_budget(StudyOptions(study="w-sweep", w_grid=(0.5, 1.5)))
    with pytest.raises(StudyError, match="--epochs must be positive"):
        resolve_budget(StudyOptions(study="w-sweep", epochs=0))


@pytest.mark.slow
def test_time_budget_cuts_trials_and_the_rerun_finishes_every_grid_point(
    tmp_path: Path, study_in_process: InProcess
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    longer = [*QUICK, "--epochs", "4", "--train-limit", "2048", "--w-grid", "0,1"]  # a trial outlasts the budget
    # one trial at a time: the first is cut while it runs, the second never starts in time
    code, _, err = study_in_process(
        "--study", "w-sweep", *longer, *ONE_AT_A_TIME, "--time-budget", "0.15", "--storage", url
    )
    assert code == 0, err[-3000:]
    trials = load(url).trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    stopped = [t for t in trials if t.state == TrialState.PRUNED]
    assert stopped and all(t.user_attrs["stopped_by"] == "time-budget" for t in stopped)

    code, _, err = study_in_process("--study", "w-sweep", *longer, *ONE_AT_A_TIME, "--storage", url)
    assert code == 0, err[-3000:]
    complete = [t for t in load(url).trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["w"] for t in complete) == [0.0, 1.0]


@pytest.mark.slow
def test_a_one_point_grid_completes_and_so_does_the_last_point_of_a_resumed_grid(
    tmp_path: Path, study_in_process: InProcess
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    code, _, err = study_in_process("--study", "w-sweep", *QUICK, "--w-grid", "0.5", "--seeds", "0", "--storage", url)
    assert code == 0, err[-3000:]
    assert [(t.state, t.params) for t in load(url).trials] == [(TrialState.COMPLETE, {"seed": 0, "w": 0.5})]
    # the same study on a wider grid: one point is done, the one left runs and is stored
    code, _, err = study_in_process("--study", "w-sweep", *QUICK, "--w-grid", "0.5,1", "--seeds", "0", "--storage", url)
    assert code == 0, err[-3000:]
    assert "1 trial(s) to run" in err
    assert [(t.state, t.params) for t in load(url).trials] == [
        (TrialState.COMPLETE, {"seed": 0, "w": 0.5}),
        (TrialState.COMPLETE, {"seed": 0, "w": 1.0}),
    ]


def test_best_model_is_read_only_from_the_studys_run_folder(tmp_path: Path) -> None:
    """run_dir comes from the database: a path outside the study's run folder is never read."""
    from storage import make_artifact_store
    from studies.service.runner import store_best_model

    outside, run_root = tmp_path / "elsewhere", tmp_path / "runs" / "s"
    for folder in (outside, run_root / "abc"):
        folder.mkdir(parents=True)
        (folder / "model.pt").write_bytes(b"weights")
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'x.db'}", direction="maximize")
    store = make_artifact_store(tmp_path / "artifacts")
    trial = study.ask()
    trial.set_user_attr("run_dir", str(run_root / "abc" / ".." / ".." / ".." / "elsewhere"))
    study.tell(trial, 0.9)
    store_best_model(study, store, run_root)
    assert "best_model_trial" not in study.user_attrs

    trial = study.ask()
    trial.set_user_attr("run_dir", str(run_root / "abc"))
    study.tell(trial, 0.95)
    store_best_model(study, store, run_root)
    assert study.user_attrs["best_model_trial"] == 1


def test_local_ray_gets_a_private_token() -> None:
    from studies.service.tuning import private_ray_token

    env = private_ray_token()
    token = Path(env["RAY_AUTH_TOKEN_PATH"])
    assert env["RAY_AUTH_MODE"] == "token"
    assert token.stat().st_mode & 0o777 == 0o600 and token.parent.stat().st_mode & 0o777 == 0o700
    assert len(token.read_text()) == 64


def test_a_studys_budget_is_its_data_sets_variant() -> None:
    from studies.service.budgets import BUDGETS, CPU_RGB32
    from studies.service.options import StudyOptions, resolve_budget

    assert resolve_budget(StudyOptions(study="w-sweep", dataset="cifar10-jpeg")) == CPU_RGB32
    assert resolve_budget(StudyOptions(study="w-sweep", dataset="mnist")) == BUDGETS["cpu"]
    assert resolve_budget(StudyOptions(study="w-sweep", dataset="cifar10-jpeg", epochs=2)).train_limit == 14000
