"""`--set data.data_dir=...` is refused like `--set data.dataset=...` (test_studies.py): it would
silently override --data-dir. One line, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

from tests.smoke_study import run_cli


def test_set_data_dir_is_one_line_and_writes_nothing(tmp_path: Path, mnist_dir: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    done = run_cli(
        "--study",
        "w-sweep",
        "--budget",
        "smoke",
        "--set",
        f"data.data_dir={tmp_path / 'other'}",
        cwd=work,
        data_dir=mnist_dir,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == ["error: --set data.data_dir would silently override --data-dir; use --data-dir"], done.stderr
    assert list(work.iterdir()) == [] and not (tmp_path / "other").exists()
