"""The loopback cluster's Ray temp folder, /tmp/sidae-ray-<hash of the state folder>: a name
anyone on the machine can predict. `up` makes it 0700, and refuses in one line (exit 2), before
it starts anything, a folder there that is not ours alone: someone else's, writable by others,
a symbolic link, a file. A folder of ours that others can only read is tightened to 0700.

In this process, with studies/cluster/local.py's `up` replaced: nothing starts either way."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from studies.cluster import local
from studies.cluster.state import Paths

NOBODY = 65534


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state folder whose Ray temp folder is not there yet, and is removed afterwards."""
    folder = tmp_path / "state"
    temp = Paths(folder).ray_temp
    assert not temp.exists() and not temp.is_symlink(), f"{temp} is left from elsewhere"
    yield folder
    if temp.is_symlink() or temp.is_file():
        temp.unlink()
    else:
        shutil.rmtree(temp, ignore_errors=True)


def up(state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, bool]:
    """`local_cluster.py --state-dir STATE up`: its exit status, stderr, and whether it went on to start."""
    started = []
    monkeypatch.setattr(local, "up", lambda *args: started.append(args) or 0)
    code = local.main(["--state-dir", str(state), "up"])
    return code, capsys.readouterr().err, bool(started)


def foreign(temp: Path, elsewhere: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    temp.mkdir(mode=0o700)
    os.chown(temp, NOBODY, NOBODY)


def writable_by_others(temp: Path, elsewhere: Path) -> None:
    temp.mkdir()
    temp.chmod(0o777)


def symlink(temp: Path, elsewhere: Path) -> None:
    elsewhere.mkdir(mode=0o700)  # ours and private: only the link is wrong
    temp.symlink_to(elsewhere)


def a_file(temp: Path, elsewhere: Path) -> None:
    temp.write_text("")


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (foreign, f"owned by uid {NOBODY}, not by this user"),
        (writable_by_others, "writable by others (mode 777)"),
        (symlink, "a symbolic link"),
        (a_file, "not a folder"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_up_refuses_a_temp_folder_that_is_not_ours_alone(
    state: Path,
    tmp_path: Path,
    make: Callable[[Path, Path], None],
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    temp, elsewhere = Paths(state.resolve()).ray_temp, tmp_path / "elsewhere"
    make(temp, elsewhere)
    before = temp.lstat()
    code, err, started = up(state, monkeypatch, capsys)
    assert code == 2 and not started, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Ray's temp folder {temp} is {problem}"), err
    after = temp.lstat()  # left as it was: neither taken over nor removed
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)
    if elsewhere.exists():
        assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o700


def test_up_makes_the_temp_folder_private(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = Paths(state.resolve()).ray_temp
    old = os.umask(0o022)  # the usual one: a plain mkdir would make it 0755
    try:
        code, err, started = up(state, monkeypatch, capsys)
    finally:
        os.umask(old)
    assert code == 0 and started, err
    info = temp.lstat()
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    temp.chmod(0o755)  # ours, readable by others: as an `up` before this check made it
    code, err, started = up(state, monkeypatch, capsys)
    assert code == 0 and started, err
    assert stat.S_IMODE(temp.lstat().st_mode) == 0o700
