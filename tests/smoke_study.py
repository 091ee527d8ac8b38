"""One real smoke w-sweep (9 trials, local Ray, SQLite, real MNIST) shared by the tests that
inspect a finished study: the storage, the dashboard, the report. And the two ways the tests
run the study command: as a user's process (run_cli), or in the test's own process
(main_in_process), for refused inputs and for studies whose point is not the process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import optuna
import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
TINY = ["--budget", "smoke", "--train-limit", "512", "--quiet"]
# For a test that needs trials to run but not both probes: only the 1 % one (the objective's).
# It saves a tiny trial about half its evaluation (the 10 % probe and its 5,900 encodings), and
# a seed task (controls and baseline) about half its CPU: 18-22 CPU-seconds with both probes,
# 8-10 at 1 % (benchmarks/README.md, "Where a study test's CPU goes"). The shared smoke study
# runs it too: the README's first look (tests/test_docs.py) shows both fractions end to end, and
# tests/test_report_multiseed.py every table at both.
QUICK = [*TINY, "--set", "eval.label_fractions=(0.01,)"]
# One trial at a time, where two at once is not what a test shows: one actor (Ray reuses it)
# instead of two, each paying for its interpreter and imports.
ONE_AT_A_TIME = ["--max-concurrent", "1"]


def run_cli(
    *args: str, cwd: Path, data_dir: Path, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python studies/run.py ARGS` as a user runs it (in `env`, default: this process's)."""
    return subprocess.run(
        [sys.executable, str(REPO / "studies" / "run.py"), "--data-dir", str(data_dir), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def main_in_process(
    *args: str, cwd: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """`studies/run.py ARGS` as run_cli runs it, but in this process (no interpreter start, no
    torch import: seconds saved per case): the exit code, stdout and stderr. Warnings and
    log records, which a fresh process would print on stderr but pytest catches, are returned
    on stderr too; the process's environment and Optuna's verbosity are put back afterwards.

    A study that runs trials starts the local Ray of this pytest worker, or uses the one an
    earlier call started (each study command pays about 10 seconds to start its own): one Ray
    shared by the worker's in-process studies. Its token authentication is off, as for
    tests/test_interruptions.py's runs: the test modules import Ray before a study command
    could give it a private token, and Ray reads the mode once, when imported."""
    from studies.cli import run

    monkeypatch.chdir(cwd)
    environment, verbosity = dict(os.environ), optuna.logging.get_verbosity()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    with warnings.catch_warnings(record=True) as warned, LogRecords() as logged:
        warnings.simplefilter("always")
        try:
            code = run.main(["--data-dir", str(data_dir), *args])
        except SystemExit as stop:  # the parser's one-line error or --help: argparse exits with an int status
            code = int(stop.code or 0)
        finally:
            for key in os.environ.keys() - environment.keys():
                del os.environ[key]
            os.environ.update(environment)
            optuna.logging.set_verbosity(verbosity)
    out, err = capfd.readouterr()
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)  # by default
    shown = [w for w in warned if not issubclass(w.category, hidden)]
    return code, out, err + "".join(f"{w.category.__name__}: {w.message}\n" for w in shown) + logged.text()


InProcess = Callable[..., tuple[int, str, str]]


@pytest.fixture
def study_in_process(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> InProcess:
    """main_in_process(*ARGS) in the test's tmp_path on the real MNIST."""
    return partial(main_in_process, cwd=tmp_path, data_dir=mnist_dir, monkeypatch=monkeypatch, capfd=capfd)


class LogRecords(logging.Handler):
    """Log records of WARNING and above from any logger while in use, as a process's stderr
    would show them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}\n")

    def text(self) -> str:
        return "".join(self.lines)

    def __enter__(self) -> LogRecords:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


@dataclass(frozen=True)
class SmokeStudy:
    folder: Path  # the study command's folder: studies.db, studies-artifacts, runs/
    stdout: str  # what the command printed
    name: str = "w-sweep-mnist"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.folder / 'studies.db'}"

    @property
    def artifact_dir(self) -> Path:
        return self.folder / "studies-artifacts"


STDOUT = "run-stdout.txt"  # the command's stdout, kept beside the study: written last


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> SmokeStudy:
    """The study, run once per test run: under pytest-xdist the first worker to need it runs it
    in the run's own folder (above the workers' ones) while the others wait on a file lock,
    then all of them read it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return run_smoke_study(tmp_path_factory.mktemp("smoke-study"), mnist_dir)
    folder = tmp_path_factory.getbasetemp().parent / "smoke-study"
    with FileLock(f"{folder}.lock"):
        if not (folder / STDOUT).is_file():  # none yet, or the study failed: (re)run it
            folder.mkdir(exist_ok=True)
            return run_smoke_study(folder, mnist_dir)
    return SmokeStudy(folder, (folder / STDOUT).read_text())


# A few fine-tuning steps, so the fine-tune tables and the supervised baseline exist too.
FIXTURE_OPTIONS = [*QUICK, "--set", "eval.finetune=True", "--set", "eval.finetune_steps=20"]


def run_smoke_study(folder: Path, mnist_dir: Path) -> SmokeStudy:
    study = SmokeStudy(folder, "")
    done = run_cli("--study", "w-sweep", *FIXTURE_OPTIONS, "--storage", study.url, cwd=folder, data_dir=mnist_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder / STDOUT).write_text(done.stdout)
    return SmokeStudy(folder, done.stdout)
