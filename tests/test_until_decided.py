"""`studies/run.py --study w-sweep --until-decided SEEDS` end to end (the command's main, in the
test's process and its pytest worker's Ray): the design is declared on the study before any
trial, the pilot's w is stored once chosen, the confirmation runs only the chosen w and both
baselines on fresh seeds, and a rerun resumes (here: finds it finished). Bad uses are one line
and write nothing."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from studies.analysis.claim import CHOSEN_ATTR, DESIGN_ATTR
from tests.smoke_study import ONE_AT_A_TIME, QUICK, TINY, InProcess, main_in_process


def test_bad_until_decided_is_one_line(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """In this process (studies/run.py's main): a refused input's one line from a real process
    is test_studies.py's test_bad_input_is_one_line_from_the_real_command_line."""
    cases = (
        (["--study", "noise-sweep", "--until-decided", "3"], "confirmatory w-sweep"),
        (["--study", "w-sweep", "--seeds", "0,1", "--until-decided", "4"], "is descriptive"),
        (["--study", "w-sweep", "--w-grid", "0,1", "--until-decided", "4"], "is descriptive"),
        (["--study", "w-sweep", "--until-decided", "1"], "must be 2 to 30"),
        (["--study", "w-sweep", "--until-decided", "31"], "must be 2 to 30"),
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
        assert code == 2 and err.startswith("error: ") and message in err, err
        assert err.count("\n") == 1
    assert not (tmp_path / "studies.db").exists()


@pytest.mark.slow
def test_fresh_seeds_only_for_the_chosen_w_and_the_baselines_and_a_rerun_resumes(
    tmp_path: Path, study_in_process: InProcess
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    args = ("--study", "w-sweep", *QUICK, *ONE_AT_A_TIME, "--until-decided", "3", "--storage", url)
    code, out, err = study_in_process(*args)
    assert code == 0, err[-3000:]
    study = optuna.load_study(study_name="w-sweep-mnist", storage=url)
    design = study.user_attrs[DESIGN_ATTR]
    assert (design["pilot_seeds"], design["confirm_seeds"], design["looks"]) == ([0], [1, 2, 3], [3])
    w = study.user_attrs[CHOSEN_ATTR]
    assert w == 0.5  # the smoke grid's only inner w
    points = sorted((t.params["seed"], t.params["w"]) for t in study.trials)
    assert points == sorted([(0, 0.0), (0, 0.5), (0, 1.0)] + [(s, x) for s in (1, 2, 3) for x in (0.0, w, 1.0)])
    assert set(study.user_attrs["controls"]) == {"0", "1", "2", "3"}  # every seed's controls
    assert "pilot chose w=0.5" in err and "confirmatory design" in err
    verdict = next(line for line in out.splitlines() if line.startswith("primary verdict"))
    assert "3 fresh seeds" in verdict and any(word in verdict for word in ("HOLDS", "REVERSED", "NOT SHOWN", "VOID"))

    code, _, err = study_in_process(*args)  # resumes: the stage is read from the trials
    assert code == 0 and "nothing left to run" in err
    assert len(optuna.load_study(study_name="w-sweep-mnist", storage=url).trials) == 12

    code, _, err = study_in_process("--study", "w-sweep", *QUICK, "--storage", url)
    assert code == 2 and "another confirmatory design" in err  # looks (2,), not (3,)
