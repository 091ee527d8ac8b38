"""Failures made to happen for real, then the storage checked: a Ray worker killed with -9, the
driver killed with -9 and rerun, PostgreSQL stopped and started under a running study, two
drivers on one study, a full disk, a read-only database. (The dashboard reading a SQLite file
while a study writes it is in test_dashboard.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import make_storage
from studies.service import lease
from studies.service.catalogue import W_SWEEP_DISTRIBUTIONS
from tests.postgres import PostgresServer
from tests.smoke_study import ONE_AT_A_TIME, QUICK, REPO, InProcess, main_in_process

# Trials long enough (4 epochs) to be caught in the middle.
LONGER = [*QUICK, "--epochs", "4", "--train-limit", "2048"]
W_GRID = [0.0, 0.5, 1.0]  # the smoke budget's
# Smaller grids where the behaviour needs no more: one point for one trial, two points for two
# trials at once (one wave on 2 cores), or one after the other (ONE_AT_A_TIME).
ONE_POINT, TWO_POINTS = ["--w-grid", "0.5"], ["--w-grid", "0,1"]


MARK = "SIDAE_TEST_DRIVER"  # in the environment of a test's driver, so of its Ray processes


def start_cli(*args: str, cwd: Path, data_dir: Path) -> subprocess.Popen[str]:
    """`studies/run.py ARGS` in the background, in a process group of its own (so that killing
    it can take its Ray processes along when the test cleans up), marked with `cwd`."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "studies" / "run.py"), "--data-dir", str(data_dir), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, MARK: str(cwd)},
    )


@contextmanager
def background(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def trials(url: str, name: str = "w-sweep-mnist") -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=url).trials
    except KeyError:  # the study is not created yet
        return []


def reported_epochs(url: str) -> int:
    return sum(len(t.intermediate_values) for t in trials(url))


def ray_workers(cwd: Path) -> list[int]:
    """Pids of the trial processes of the driver started in `cwd` (their process title names
    the trainable; their environment carries the driver's mark). Other Ray clusters may run on
    the machine: their workers are not ours to kill or wait for."""
    mark = f"{MARK}={cwd}".encode() + b"\0"
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and b"ray::ImplicitFunc" in (entry / "cmdline").read_bytes()
                and mark in (entry / "environ").read_bytes()
            ):
                pids.append(int(entry.name))
        except OSError:  # the process ended while we looked
            continue
    return sorted(pids)


def assert_grid_complete_once(url: str, grid: list[float]) -> None:
    """Every grid point COMPLETE exactly once, nothing left RUNNING."""
    found = trials(url)
    assert not [t for t in found if t.state == TrialState.RUNNING]
    complete = sorted(t.params["w"] for t in found if t.state == TrialState.COMPLETE)
    assert complete == grid


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_retried_from_its_checkpoint(tmp_path: Path, mnist_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    with background(
        start_cli("--study", "w-sweep", *LONGER, *ONE_POINT, "--storage", url, cwd=tmp_path, data_dir=mnist_dir)
    ) as driver:
        wait_for(lambda: reported_epochs(url) >= 1 and ray_workers(tmp_path), "the trial's first epoch")
        victim = ray_workers(tmp_path)[0]
        os.kill(victim, signal.SIGKILL)
        _, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    assert_grid_complete_once(url, [0.5])
    assert lease.current(make_storage(url), "w-sweep-mnist") is None  # the driver released the study at the end
    first = min(trials(url), key=lambda t: t.number)
    assert first.user_attrs["pid"] == victim  # the trial whose process was killed...
    assert first.state == TrialState.COMPLETE  # ...was restarted by Ray and finished
    assert sorted(first.intermediate_values) == [1, 2, 3, 4]
    assert "Failure # 1" in (Path(first.user_attrs["ray_logdir"]) / "error.txt").read_text()


@pytest.mark.slow
def test_a_killed_driver_is_resumed_by_rerunning_the_command(
    tmp_path: Path, mnist_dir: Path, study_in_process: InProcess
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    command = ["--study", "w-sweep", *LONGER, *TWO_POINTS, *ONE_AT_A_TIME, "--storage", url]
    with background(start_cli(*command, cwd=tmp_path, data_dir=mnist_dir)) as driver:
        wait_for(
            lambda: any(t.state == TrialState.COMPLETE for t in trials(url)) and reported_epochs(url) >= 6,
            "one complete trial and the next one under way",
        )
        os.kill(driver.pid, signal.SIGKILL)  # the driver only: its Ray processes must go with it
        driver.wait()
        wait_for(lambda: not ray_workers(tmp_path), "the dead driver's Ray workers to exit", timeout=60)
    before = {t.number: t.state for t in trials(url)}
    assert TrialState.RUNNING in before.values()

    code, _, err = study_in_process(*command)  # the rerun: in this process, its point is the resume
    assert code == 0, err[-3000:]
    after = trials(url)
    for trial in after:
        if before.get(trial.number) == TrialState.COMPLETE:
            assert trial.state == TrialState.COMPLETE  # kept, not rerun
        if before.get(trial.number) == TrialState.RUNNING:
            assert trial.state == TrialState.FAIL and "driver" in trial.user_attrs["fail_reason"]
    assert_grid_complete_once(url, [0.0, 1.0])
    retried = [t for t in after if t.number not in before]
    resumed = [
        t
        for t in retried
        if t.params["w"] in {after[n].params["w"] for n, s in before.items() if s == TrialState.RUNNING}
    ]
    # The retried configuration found the dead trial's checkpoint: it reported only later epochs.
    assert resumed and min(resumed[0].intermediate_values) > 1


@pytest.mark.slow
def test_a_postgresql_restart_mid_study_is_waited_out(
    tmp_path: Path, mnist_dir: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url
    name = "w-sweep-restart"
    with background(
        start_cli(
            "--study",
            "w-sweep",
            *LONGER,
            *TWO_POINTS,
            "--name",
            name,
            "--storage",
            url,
            "--artifact-dir",
            str(tmp_path / "artifacts"),
            cwd=tmp_path,
            data_dir=mnist_dir,
        )
    ) as driver:
        wait_for(lambda: sum(len(t.intermediate_values) for t in trials(url, name)) >= 1, "a first epoch")
        with postgres_server.stopped():
            time.sleep(8)  # trials keep reporting epochs into the outage
        _, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    found = trials(url, name)
    assert sorted(t.params["w"] for t in found if t.state == TrialState.COMPLETE) == [0.0, 1.0]
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] for t in found)


HOLD_LEASE = """
import sys, time
from storage import make_storage
from studies.service import lease
with lease.holding(make_storage(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_second_driver_on_the_same_study_refuses(tmp_path: Path, study_in_process: InProcess) -> None:
    """A live driver of the study is a process holding its lease (what a running driver does
    first, studies/service/runner.py): the command, as a second driver, refuses in one line
    naming it and touches nothing: the first driver's running trial stays as it is. (A real
    driver releasing its lease at the end: the worker test above.)"""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="w-sweep-mnist", storage=url, direction="maximize")
    study.set_user_attr("study", "w-sweep")
    study.set_user_attr("dataset", "mnist")
    study.enqueue_trial({"seed": 0, "w": 0.5})
    study.ask(W_SWEEP_DISTRIBUTIONS)  # the first driver's trial under way, RUNNING
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEASE, url, "w-sweep-mnist"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # killed by background() as a driver is: its process group
    )
    with background(first):
        assert first.stdout is not None and first.stdout.readline() == "held\n"
        code, _, err = study_in_process("--study", "w-sweep", *QUICK, *ONE_POINT, "--storage", url)
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "is being run by another driver" in lines[0]
        assert f"pid {first.pid} " in lines[0]
        held = lease.current(make_storage(url), "w-sweep-mnist")
        assert held is not None and held.pid == first.pid  # still the first driver's
        # not marked stale, not queued again, nothing added
        assert [(t.state, t.params) for t in trials(url)] == [(TrialState.RUNNING, {"seed": 0, "w": 0.5})]
        assert first.poll() is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB file system (tmpfs; the tests run as root in CI): a checkpoint does not fit."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (tests need root): {done.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_fails_the_trials_clearly_and_the_study_goes_on(
    tmp_path: Path, small_disk: Path, study_in_process: InProcess
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    code, _, err = study_in_process(
        "--study",
        "w-sweep",
        *QUICK,
        "--trial-retries",
        "0",
        "--storage",
        url,
        "--artifact-dir",
        str(small_disk),
    )
    assert code == 0, err[-3000:]
    found = trials(url)
    assert sorted(t.params["w"] for t in found) == W_GRID  # every trial was tried
    for trial in found:
        assert trial.state == TrialState.FAIL
        assert "No space left on device" in trial.user_attrs["fail_reason"]


def test_a_read_only_database_is_a_one_line_error(
    tmp_path: Path,
    mnist_dir: Path,
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Run in this process (studies/run.py's main), as test_studies.py's refused inputs are;
    one of those also runs as a user's process."""
    url = f"sqlite:///{small_disk / 'studies.db'}"
    # in another process, so that no open connection keeps the file system busy
    subprocess.run(
        [sys.executable, "-c", f"import optuna; optuna.create_study(study_name='kept', storage='{url}')"],
        check=True,
        capture_output=True,
    )
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, _, err = main_in_process(
        "--study",
        "w-sweep",
        *QUICK,
        "--storage",
        url,
        cwd=tmp_path,
        data_dir=mnist_dir,
        monkeypatch=monkeypatch,
        capfd=capfd,
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open SQLite database"), err
    assert [s.study_name for s in optuna.study.get_all_study_summaries(url)] == ["kept"]  # nothing lost


def test_corrupt_data_files_are_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests import formats

    formats.write_mnist(tmp_path / "data", "MNIST", n_train=100, n_test=20)
    images = tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:500])
    code, _, err = main_in_process(
        "--study",
        "w-sweep",
        *QUICK,
        "--storage",
        f"sqlite:///{tmp_path / 'studies.db'}",
        cwd=tmp_path,
        data_dir=tmp_path / "data",
        monkeypatch=monkeypatch,
        capfd=capfd,
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "unreadable or corrupt files" in lines[0]
    assert not (tmp_path / "studies.db").exists()
