"""`studies/run.py --study w-sweep --until-decided SEEDS` end to end: after the first round, seeds
only at the chosen w and the baselines of open comparisons; the terminal line and the report say
decided or open and the trials against the full budget; a rerun resumes (here: finds it finished)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from studies.analysis.adaptive import ADAPTIVE_ATTR
from tests.smoke_study import REPO, TINY, main_in_process, run_cli


def test_bad_until_decided_is_one_line(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """In this process (studies/run.py's main): a refused input's one line from a real process
    is test_studies.py's test_bad_input_is_one_line_from_the_real_command_line."""
    cases = (
        (["--study", "noise-sweep", "--until-decided", "3"], "--until-decided is a w-sweep's"),
        (["--study", "w-sweep", "--seeds", "0,1", "--until-decided", "1"], "at least its first round"),
    )
    for args, message in cases:
        code, _, err = main_in_process(
            *args,
            *TINY,
            "--storage",
            f"sqlite:///{tmp_path / 'studies.db'}",
            cwd=tmp_path,
            data_dir=mnist_dir,
            monkeypatch=monkeypatch,
            capfd=capfd,
        )
        assert code == 2 and err.startswith("error: ") and message in err
        assert err.count("\n") == 1
    assert not (tmp_path / "studies.db").exists()


@pytest.mark.slow
def test_seeds_go_only_to_open_comparisons_and_a_rerun_resumes(tmp_path: Path, mnist_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    args = ("--study", "w-sweep", *TINY, "--w-grid", "0,0.5,0.9,1", "--until-decided", "2", "--storage", url)
    done = run_cli(*args, cwd=tmp_path, data_dir=mnist_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="w-sweep-mnist", storage=url)
    assert study.user_attrs[ADAPTIVE_ATTR] == {"seeds": [0, 1], "w_grid": [0.0, 0.5, 0.9, 1.0]}
    points = sorted((t.params["seed"], t.params["w"]) for t in study.trials)
    inner = [w for seed, w in points if seed == 1 and 0 < w < 1]
    assert [p for p in points if p[0] == 0] == [(0, 0.0), (0, 0.5), (0, 0.9), (0, 1.0)]  # the first round
    assert len(inner) == 1 and sorted(w for seed, w in points if seed == 1) == [0.0, inner[0], 1.0]
    line = next(line for line in done.stdout.splitlines() if line.startswith("until decided"))
    assert line.endswith("7 trials of the 8 a full-budget run would take") and "open after 2 seeds" in line

    again = run_cli(*args, cwd=tmp_path, data_dir=mnist_dir)  # resumes: the plan is read from the trials
    assert again.returncode == 0 and "nothing left to run" in again.stderr
    assert len(optuna.load_study(study_name="w-sweep-mnist", storage=url).trials) == 7

    out = tmp_path / "report"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "studies" / "report.py"),
            "--name",
            "w-sweep-mnist",
            "--storage",
            url,
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    text = (out / "report.md").read_text()
    assert "### Decided or open (adaptive seeds)" in text
    assert "Trials: 7 of the 8 that 2 seeds at every w would take (1 not run; finished)." in text
