"""Out-of-range command-line values are refused before anything starts: exit status 2, one
line on stderr (`error: ...`) naming the option and what it allows, and nothing created or
started (no database, no run or state folder, no data read, no Ray, no cluster).

Each command runs in this process (its `main`): no interpreter start, no second torch import.
What the command would touch next is replaced by a test failure, so a value let through fails
here at once instead of starting a study or a cluster."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
import torch

from sidae import train
from sidae.config import default_config
from studies.cli import dashboard, report
from studies.cli import run as run_cli
from studies.cluster import local
from studies.service import options, runner
from tests.smoke_study import main_in_process


def touched(*args: object, **kwargs: object) -> NoReturn:
    pytest.fail("a refused value got past the checks: the command went on to read or start something")


def outcome(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`main(argv)`'s exit status, as a process's (the parser exits with SystemExit), and stderr."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


def assert_refused(code: int, stderr: str, expected: tuple[str, ...]) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert all(part in lines[0] for part in expected), (expected, stderr)


def named(value: object) -> str | None:
    """A case's test id: its command-line arguments (pytest's default for the rest)."""
    return " ".join(value) if isinstance(value, list) else None


NON_FINITE = ("nan", "inf", "-inf")  # given as --flag=-inf: argparse reads a lone -inf as an option


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-retries", "-1"], ("--max-retries", ">= 0")),
        (["--trial-retries", "-1"], ("--trial-retries", ">= 0")),
        (["--max-concurrent", "-3"], ("--max-concurrent", ">= 1")),
        (["--max-concurrent", "0"], ("--max-concurrent", ">= 1")),
        *(([f"--time-budget={value}"], ("--time-budget", "finite", "> 0")) for value in ("0", "-5", *NON_FINITE)),
        *(([f"--cpus-per-trial={value}"], ("--cpus-per-trial", "finite", "> 0")) for value in ("0", *NON_FINITE)),
        *(([f"--gpus-per-trial={value}"], ("--gpus-per-trial", "finite", ">= 0")) for value in ("-1", *NON_FINITE)),
        *(
            ([f"--min-collapse-std={value}"], ("--min-collapse-std", ">= 0 and <= 1"))
            for value in ("-0.1", "1.5", "nan")
        ),
        (["--seed", "-1"], ("--seed", ">= 0")),
        (["--seed", str(2**32)], ("--seed", "<= 4294967295")),
        (["--seeds", "0,-1"], ("--seeds", ">= 0")),
        (["--seeds", f"0,{2**64}"], ("--seeds", "<= 4294967295")),
        (["--primary-fraction", "0"], ("--primary-fraction", "> 0 and <= 1")),
        (["--primary-fraction", "nan"], ("--primary-fraction", "> 0 and <= 1")),
        (["--device", "bogus"], ("device must be auto, cpu, cuda or cuda:N", "'bogus'")),
        (["--device", "cuda:x"], ("device must be auto, cpu, cuda or cuda:N",)),
        (["--device", "cuda"], ("--device cuda needs --gpus-per-trial > 0",)),
        (["--device", "cuda:1", "--gpus-per-trial", "1"], ("--device cuda:1: torch sees no CUDA device",)),
        # refused before (studies.service.options.resolve_budget); here so that they stay refused
        (["--epochs", "0"], ("--epochs must be positive",)),
        (["--train-limit", "-5"], ("--train-limit must be positive",)),
        (["--trials", "0"], ("--trials must be positive",)),
    ],
    ids=named,
)
def test_study_command(
    tmp_path: Path,
    args: list[str],
    expected: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # the data (read, or downloaded, last of the checks), then the database, the lease and Ray
    monkeypatch.setattr(options, "fetch", touched)
    monkeypatch.setattr(runner, "make_storage", touched)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as in CI, whatever this machine has
    work, database = tmp_path / "work", tmp_path / "x.db"
    work.mkdir()
    code, _, err = main_in_process(
        "--study",
        "w-sweep",
        "--budget",
        "smoke",
        "--storage",
        f"sqlite:///{database}",
        *args,
        cwd=work,
        data_dir=work / "data",
        monkeypatch=monkeypatch,
        capfd=capfd,
    )
    assert_refused(code, err, expected)
    assert not database.exists() and list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--threads", "-1"], ("--threads", ">= 1")),
        (["--threads", "0"], ("--threads", ">= 1")),  # 0 was silently torch's default
        (["--seed", str(2**64)], ("--seed", "<= 4294967295")),  # was "Overflow when unpacking long long"
        (["--device", "bogus"], ("device must be auto, cpu, cuda or cuda:N", "'bogus'")),
        (["--device", "cuda:01"], ("device must be auto, cpu, cuda or cuda:N",)),
        (["--weight-decay", "inf"], ("weight_decay must be finite and >= 0",)),
    ],
    ids=named,
)
def test_train_command(
    tmp_path: Path,
    args: list[str],
    expected: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(train, "load_splits", touched)
    monkeypatch.setattr(train.torch, "set_num_threads", touched)  # the process's thread count, for good
    code, err = outcome(
        train.main,
        [*args, "--data-dir", str(tmp_path / "data"), "--no-download", "--out", str(tmp_path / "run"), "--quiet"],
        capsys,
    )
    assert_refused(code, err, expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "99999"], ("--port", ">= 0 and <= 65535")),
        (["--port", "-1"], ("--port", ">= 0 and <= 65535")),
        (["--host", ""], ("--host", "every interface")),
        (["--host", " "], ("--host", "every interface")),
    ],
    ids=named,
)
def test_dashboard_command(
    tmp_path: Path,
    args: list[str],
    expected: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(dashboard, "serve", touched)
    database = tmp_path / "x.db"
    code, err = outcome(dashboard.main, ["--storage", f"sqlite:///{database}", *args], capsys)
    assert_refused(code, err, expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("top", ["0", "-2"])
def test_report_command(
    tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(report, "open_existing_storage", touched)
    argv = ["--name", "w-sweep-mnist", "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--out", str(tmp_path / "out")]
    code, err = outcome(report.main, [*argv, "--top", top], capsys)
    assert_refused(code, err, ("--top", ">= 1"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--workers", "0"], ("--workers must be >= 1",)),
        (["--cpus-per-worker", "0"], ("--cpus-per-worker must be >= 1",)),
        (["--gpus-per-worker", "-1"], ("--gpus-per-worker must be >= 0",)),
        (["--dashboard-port", "70000"], ("--dashboard-port must be 0 to 65535",)),
        (["--dashboard-port", "-1"], ("--dashboard-port must be 0 to 65535",)),
    ],
    ids=named,
)
def test_cluster_up_options(
    tmp_path: Path,
    args: list[str],
    expected: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(local, "up", touched)
    code, err = outcome(local.main, ["--state-dir", str(tmp_path / "state"), "up", *args], capsys)
    assert_refused(code, err, expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["/proc/x", "a file/state"])
def test_cluster_state_dir_that_cannot_be_written(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a file").write_text("")
    state = tmp_path / where  # /proc/x stays absolute
    monkeypatch.setattr(local, "up", touched)
    code, err = outcome(local.main, ["--state-dir", str(state), "up"], capsys)
    assert_refused(code, err, ("--state-dir", str(state.resolve()), "choose another folder"))
    assert not state.exists()


def test_the_bounds_themselves_are_accepted() -> None:
    """The limits are inclusive where --help says so: no check refuses what it documents."""
    run_cli.parser().parse_args(
        [
            *("--max-retries", "0", "--trial-retries", "0", "--max-concurrent", "1", "--time-budget", "0.5"),
            *("--cpus-per-trial", "0.5", "--gpus-per-trial", "0", "--min-collapse-std", "1", "--seed", str(2**32 - 1)),
            *("--primary-fraction", "1"),
        ]
    )
    train.parser().parse_args(["--threads", "1"])
    for port in ("0", "65535"):
        dashboard.parser().parse_args(["--port", port, "--host", "0.0.0.0"])
    report.parser().parse_args(["--name", "x", "--out", "x", "--top", "1"])
    for device in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert default_config("mnist", device=device).device == device
