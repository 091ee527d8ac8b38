"""`studies/report.py` on a real smoke w-sweep: the files, the paper-style tables against the
numbers in the storage, a study still running, and bad input."""

from __future__ import annotations

import re
import sqlite3
import statistics
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from PIL import Image

from storage import make_storage
from studies import report
from studies.analysis.claim import Interval
from studies.analysis.controls import CONTROL_NAMES
from studies.analysis.summary import method_name
from tests.smoke_study import REPO, SmokeStudy

FIGURES = ("w_sweep.png", "importances.png", "learning_curves.png", "reconstructions.png")


def run_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "studies" / "report.py"), *args], capture_output=True, text=True, timeout=300
    )


def spread(values: list[float]) -> str:
    """A table cell: mean ± std over seeds, in points."""
    return f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def section(text: str, heading: str) -> str:
    """The markdown under `heading` up to the next heading of any level."""
    return text.split(f"{heading}\n", 1)[1].split("\n#", 1)[0]


def table_rows(markdown: str) -> list[list[str]]:
    """A markdown table's rows (header first, the |---| line dropped) as lists of cells."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]
    return [rows[0], *rows[2:]]


@pytest.mark.slow
def test_report_on_a_finished_w_sweep(smoke_study: SmokeStudy, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_report("--name", smoke_study.name, "--storage", smoke_study.url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out / 'report.md'}"
    for name in FIGURES:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 200
            lo, hi = image.convert("L").getextrema()
            assert lo < 64 and hi > 192  # drawn on, not one flat colour
    text = (out / "report.md").read_text()
    assert "Still running" not in text
    note = section(text, "## About this study")
    assert re.search(r"python\S* -m studies\.cli\.run .*--study w-sweep", note)

    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.url)
    trials = study.trials
    header, *rows = table_rows(section(text, "### Linear evaluation"))
    fractions = sorted(trials[0].user_attrs["test_linear"], key=float)
    assert header == ["method", *(f"{float(f):.0%} labels" for f in fractions)]
    by_method = {row[0]: row[1:] for row in rows}
    methods = {method_name(t.params["w"]) for t in trials}
    assert set(by_method) == methods | {"untrained encoder", "raw pixels"}
    scores = {m: [t.user_attrs["test_linear"] for t in trials if method_name(t.params["w"]) == m] for m in methods}
    for method, per_seed in scores.items():  # mean ± std over the method's seeds, in points
        for cell, fraction in zip(by_method[method], fractions, strict=True):
            assert cell.strip("*") == spread([s[fraction] for s in per_seed])
    for column, fraction in enumerate(fractions):  # bold marks the best method of each column, only it
        best = max(methods, key=lambda m: statistics.fmean(s[fraction] for s in scores[m]))
        bold = [(m, cells[column]) for m, cells in by_method.items() if cells[column].startswith("**")]
        assert bold == [(best, f"**{spread([s[fraction] for s in scores[best]])}**")]
    header, *rows = table_rows(section(text, "### Fine-tuning"))
    tuned = {row[0]: row[1:] for row in rows}
    supervised = study.user_attrs["supervised_finetune"]
    assert set(tuned) == methods | {"supervised"}
    assert [c.strip("*") for c in tuned["supervised"]] == [
        spread([per[f] for per in supervised.values()]) for f in fractions
    ]

    claim = section(text, "### Does the claim hold?")  # the smoke budget's design: 1 pilot seed, 2 fresh ones
    assert "declared before the run" in claim and "**Primary verdict: " in claim
    assert "**Chosen w**: 0.5" in claim  # the only inner w of the smoke grid
    gate = table_rows(section(text, "#### Did pre-training learn?"))
    assert [row[0] for row in gate[1:]] == ["SidAE w=0.5", "DAE", "SimSiam"]
    descriptive = table_rows(section(text, "#### Descriptive comparisons"))
    assert descriptive[0][1:3] == ["SidAE w=0.5 − DAE", "SidAE w=0.5 − SimSiam"]
    assert len(descriptive) == 1 + 2 * len(fractions)
    fresh = [t for t in trials if t.params["seed"] in (1, 2)]  # the pilot's seed 0 plays no part
    linear = {(t.params["w"], t.params["seed"]): t.user_attrs["test_linear"][fractions[0]] for t in fresh}
    differences = [100 * (linear[0.5, s] - linear[0.0, s]) for s in (1, 2)]
    pixels = [100 * (linear[0.5, s] - study.user_attrs["controls"][str(s)]["pixels"][fractions[0]]) for s in (1, 2)]
    assert gate[1][3] == str(Interval(tuple(pixels)))  # SidAE's margin over raw pixels, on the fresh seeds
    assert descriptive[1][:2] == [
        f"linear probe, {float(fractions[0]):.0%} labels",
        Interval(tuple(differences)).__str__(),
    ]

    best_rows = table_rows(section(text, "## Best trials"))[1:]
    ranked = sorted(trials, key=lambda t: t.value, reverse=True)[:5]  # the report's --top default
    assert [int(row[0]) for row in best_rows] == [t.number for t in ranked]
    assert [row[1] for row in best_rows] == [f"{t.value:.4f}" for t in ranked]
    assert f"## Reconstructions of the best trial ({ranked[0].number})" in text
    seed_tasks = study.user_attrs["seed_tasks"]  # where each seed's baseline and controls ran
    assert sorted(seed_tasks, key=int) == sorted({str(t.params["seed"]) for t in trials}, key=int)
    for seed in seed_tasks:
        assert re.search(rf"^- cpu on node \w+, no GPU: seed {seed}'s baseline and controls$", text, re.MULTILINE)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a WAL-mode database (the WAL's contents included)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.mark.slow
def test_report_on_a_study_still_running_covers_the_complete_trials(smoke_study: SmokeStudy, tmp_path: Path) -> None:
    copy_sqlite(smoke_study.folder / "studies.db", tmp_path / "studies.db")
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.load_study(study_name=smoke_study.name, storage=make_storage(url))
    for seed in (3, 4):  # two more fresh seeds queued, as `studies/run.py` does, and one started
        study.enqueue_trial({"seed": seed, "w": 0.5})
    study.ask()
    out = tmp_path / "report"
    done = run_report(
        "--name", smoke_study.name, "--storage", url, "--artifact-dir", str(smoke_study.artifact_dir), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "still running" in done.stdout
    text = (out / "report.md").read_text()
    assert re.search(r"\*\*Still running\*\* \(1 running, 1 waiting\): this report covers the 9 trials", text)
    methods = [row[0] for row in table_rows(section(text, "### Linear evaluation"))[1:]]
    expected = [method_name(w) for w in (0.0, 0.5, 1.0)] + list(CONTROL_NAMES.values())
    assert sorted(methods) == sorted(expected)
    assert (out / "reconstructions.png").is_file()  # from the --artifact-dir given


@pytest.mark.slow
def test_unknown_study_name_lists_the_names(
    smoke_study: SmokeStudy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report.main(["--name", "nope", "--storage", smoke_study.url, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no study named 'nope' in this storage; studies: ") and err.count("\n") == 1
    assert smoke_study.name in err
    assert not (tmp_path / "r").exists()


def test_empty_study_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="empty", storage=make_storage(url))
    assert report.main(["--name", "empty", "--storage", url, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "error: study 'empty' has no complete trials yet (no trials); nothing to report\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("storage", ["sqlite:///{tmp}/nowhere/studies.db", "postgresql://u:secret@127.0.0.1:9/db"])
def test_storage_that_does_not_exist_is_a_clear_error_and_creates_nothing(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = storage.format(tmp=tmp_path)
    assert report.main(["--name", "w-sweep-mnist", "--storage", url, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "secret" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_report_on_any_study_without_w(tmp_path: Path) -> None:
    """A sampled study (no w grid, some trials pruned): best trials, importances, learning
    curves; no w-sweep tables; a trial without a reconstruction grid is said to have none."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="noise", storage=make_storage(url), direction="maximize")
    study.set_user_attr("study", "noise-sweep")

    def objective(trial: optuna.Trial) -> float:
        level = trial.suggest_float("noise.level", 0.05, 0.9)
        kind = trial.suggest_categorical("noise.kind", ["gaussian", "mask"])
        for epoch in (1, 2):
            trial.report(level * epoch / 2, epoch)
        if kind == "mask" and level < 0.3:
            raise optuna.TrialPruned()
        trial.set_user_attr("test_linear", {"0.01": level})
        return level

    study.optimize(objective, n_trials=12)
    out = tmp_path / "report"
    assert report.main(["--name", "noise", "--storage", url, "--out", str(out), "--top", "3"]) == 0
    text = (out / "report.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["importances.png", "learning_curves.png", "report.md"]
    assert "## Accuracy against w" not in text
    header, *rows = table_rows(section(text, "## Best trials"))
    assert header[:4] == ["trial", "objective", "noise.level", "noise.kind"] and len(rows) == 3
    assert float(rows[0][1]) == pytest.approx(study.best_value, abs=1e-4)
    importances = table_rows(section(text, "## Parameter importances"))[1:]
    assert {row[0] for row in importances} == {"noise.level", "noise.kind"}
    assert "stored no reconstruction grid" in text
