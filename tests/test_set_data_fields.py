"""`--set data.data_dir=...` is refused like `--set data.dataset=...` (test_studies.py): it would
silently override --data-dir. One line, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.smoke_study import main_in_process


def test_set_data_dir_is_one_line_and_writes_nothing(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, _, err = main_in_process(
        "--study", "w-sweep", "--budget", "smoke", "--set", f"data.data_dir={tmp_path / 'other'}",
        cwd=work, data_dir=mnist_dir, monkeypatch=monkeypatch, capfd=capfd,
    )  # fmt: skip
    assert code == 2
    lines = err.strip().splitlines()
    assert lines == ["error: --set data.data_dir would silently override --data-dir; use --data-dir"], err
    assert list(work.iterdir()) == [] and not (tmp_path / "other").exists()
