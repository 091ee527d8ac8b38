"""The report and the verdict on a three-seed w-sweep with known numbers (tests/multiseed_study.py),
checked cell by cell against values worked out by hand: mean ± std over seeds, the best of each
column in bold, the supervised and control rows (a control ahead of every method is not bold),
the paired margins (mean ± std of per-seed differences, seeds won), the w chosen on validation
and each verdict. Runs in seconds: no training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from PIL import Image

from storage import make_storage
from studies import report
from studies.analysis.claim import claim_rows, claim_summary
from studies.analysis.figures import DPI
from studies.analysis.summary import complete_trials
from studies.cli.report import EVALUATIONS
from tests.multiseed_study import write_study

LINEAR = [
    ["method", "1% labels", "10% labels"],
    ["DAE", "82.00 ± 2.00", "91.00 ± 1.00"],
    ["SidAE w=0.5", "83.00 ± 2.00", "92.00 ± 1.00"],
    ["SidAE w=0.9", "**87.00 ± 1.00**", "91.33 ± 1.53"],
    ["SimSiam", "84.00 ± 1.00", "**93.00 ± 1.00**"],
    ["untrained encoder", "77.00 ± 2.00", "86.00 ± 1.00"],
    ["raw pixels", "86.00 ± 2.65", "94.00 ± 0.00"],  # ahead of SimSiam at 10 %, yet not bold: a control
]
FINETUNE = [
    ["method", "1% labels", "10% labels"],
    ["DAE", "86.00 ± 1.00", "95.00 ± 0.00"],
    ["SidAE w=0.5", "86.00 ± 0.00", "94.33 ± 0.58"],
    ["SidAE w=0.9", "**88.00 ± 1.00**", "**96.00 ± 1.00**"],
    ["SimSiam", "87.00 ± 1.00", "95.33 ± 1.53"],
    ["supervised", "72.00 ± 2.00", "91.00 ± 1.00"],
]
CLAIM = [
    ["evaluation", "SidAE w=0.9 − DAE", "SidAE w=0.9 − SimSiam", "claim", "SimSiam − DAE"],
    ["linear probe, 1% labels", "+5.00 ± 1.00 (3/3)", "+3.00 ± 1.00 (3/3)", "holds", "+2.00 ± 1.73 (3/3)"],
    ["linear probe, 10% labels", "+0.33 ± 2.31 (1/3)", "-1.67 ± 1.53 (0/3)", "no", "+2.00 ± 1.00 (3/3)"],
    ["fine-tune, 1% labels", "+2.00 ± 1.00 (3/3)", "+1.00 ± 2.00 (2/3)", "unclear", "+1.00 ± 1.73 (2/3)"],
    ["fine-tune, 10% labels", "+1.00 ± 1.00 (2/3)", "+0.67 ± 2.31 (2/3)", "unclear", "+0.33 ± 1.53 (1/3)"],
]


@dataclass(frozen=True)
class MultiSeedStudy:
    url: str
    name: str


@pytest.fixture
def multiseed_study(tmp_path: Path) -> MultiSeedStudy:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    write_study(url, "w-sweep-mnist")
    return MultiSeedStudy(url, "w-sweep-mnist")


def section(text: str, heading: str) -> str:
    """The markdown under `heading` up to the next heading of any level."""
    return text.split(f"{heading}\n", 1)[1].split("\n#", 1)[0]


def table_rows(markdown: str) -> list[list[str]]:
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]
    return [rows[0], *rows[2:]]


def test_report_tables_and_verdicts_cell_by_cell(multiseed_study: MultiSeedStudy, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert report.main(["--name", multiseed_study.name, "--storage", multiseed_study.url, "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "Trials: 12 complete, 1 pruned." in text  # the pruned trial's scores appear nowhere below
    assert "mean ± std over 3 seeds" in section(text, "### Linear evaluation")
    assert table_rows(section(text, "### Linear evaluation")) == LINEAR
    assert "`untrained encoder` and `raw pixels`: the same linear probe" in section(text, "### Linear evaluation")
    assert table_rows(section(text, "### Fine-tuning")) == FINETUNE
    claim = section(text, "### Does the claim hold?")
    assert "SidAE at w = 0.9, the w in (0, 1) with the best mean validation objective" in claim
    assert table_rows(claim) == CLAIM
    with Image.open(out / "w_sweep.png") as image:  # a panel per evaluation, each with its lines drawn
        assert image.format == "PNG" and image.size == (round(2 * 5.5 * DPI), round(4.2 * DPI))
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 22) or []}
    assert {(31, 119, 180), (255, 127, 14)} <= colours  # matplotlib's first two line colours: both fractions


def test_verdict_rows_and_terminal_line(multiseed_study: MultiSeedStudy) -> None:
    study = optuna.load_study(study_name=multiseed_study.name, storage=make_storage(multiseed_study.url))
    trials = complete_trials(study)
    w, rows = claim_rows(trials, EVALUATIONS)
    assert w == 0.9  # best validation among inner w; DAE and SimSiam score higher but are not candidates
    assert [(r.evaluation, r.fraction, r.verdict) for r in rows] == [
        ("linear probe", 0.01, "holds"),
        ("linear probe", 0.1, "no"),
        ("fine-tune", 0.01, "unclear"),
        ("fine-tune", 0.1, "unclear"),
    ]
    assert [round(d, 6) for d in rows[0].vs_dae.differences] == [6.0, 5.0, 4.0]  # paired by seed
    assert claim_summary(trials) == (
        "paper's claim, SidAE at w=0.9 (chosen on validation) against the DAE and "
        "SimSiam, test linear probe: 1% holds, 10% no"
    )
