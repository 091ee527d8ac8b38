"""The report and the verdict on a three-seed w-sweep with known numbers (tests/multiseed_study.py),
checked cell by cell against values worked out by hand: mean ± std over seeds, the best of each
column in bold, the supervised and control rows (a control ahead of every method is not bold),
the descriptive paired margins (mean [95 % interval] of per-seed differences), the learning check,
and the w chosen on validation; a sweep whose seeds were named has no verdict. Runs in seconds: no training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from PIL import Image

from storage import make_storage
from studies import report
from studies.analysis.claim import EVALUATIONS, claim_rows, study_verdict
from studies.analysis.figures import DPI
from studies.analysis.summary import complete_trials
from studies.analysis.verdict import verdict_lines
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
# The study names its seeds (no design): descriptive rows, mean [95 % t interval on 2 degrees of
# freedom, 4.303 x sd / sqrt(3)]; e.g. SidAE - DAE at 1 %: 6, 5, 4 -> 5 +- 4.303 x 1 / 1.732.
CLAIM = [
    ["evaluation", "SidAE w=0.9 − DAE", "SidAE w=0.9 − SimSiam", "SimSiam − DAE"],
    [
        "linear probe, 1% labels",
        "+5.00 [+2.52, +7.48] (n=3)",
        "+3.00 [+0.52, +5.48] (n=3)",
        "+2.00 [-2.30, +6.30] (n=3)",
    ],
    [
        "linear probe, 10% labels",
        "+0.33 [-5.40, +6.07] (n=3)",
        "-1.67 [-5.46, +2.13] (n=3)",
        "+2.00 [-0.48, +4.48] (n=3)",
    ],
    ["fine-tune, 1% labels", "+2.00 [-0.48, +4.48] (n=3)", "+1.00 [-3.97, +5.97] (n=3)", "+1.00 [-3.30, +5.30] (n=3)"],
    ["fine-tune, 10% labels", "+1.00 [-1.48, +3.48] (n=3)", "+0.67 [-5.07, +6.40] (n=3)", "+0.33 [-3.46, +4.13] (n=3)"],
]
# Each method minus the untrained encoder at 1 % (its numbers: tests/multiseed_study.py).
LEARNED = [  # the margin over raw pixels (85 84 89) by hand, e.g. DAE -5 -2 -5: -4 ± t(0.975, 2) * sqrt(3) / sqrt(3)
    ["method", "− untrained encoder, test linear probe 1% (95 % interval)", "learned", "− raw pixels (descriptive)"],
    ["SidAE w=0.9", "+10.00 [+7.52, +12.48] (n=3)", "yes", "+1.00 [-3.97, +5.97] (n=3)"],
    ["DAE", "+5.00 [+5.00, +5.00] (n=3)", "yes", "-4.00 [-8.30, +0.30] (n=3)"],
    ["SimSiam", "+7.00 [+2.70, +11.30] (n=3)", "yes", "-2.00 [-6.30, +2.30] (n=3)"],
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
    assert "; trials: 12 complete, 1 pruned." in text  # the pruned trial's scores appear nowhere below
    assert "mean ± std over 3 seeds" in section(text, "### Linear evaluation")
    assert table_rows(section(text, "### Linear evaluation")) == LINEAR
    assert "`untrained encoder` and `raw pixels`: the same linear probe" in section(text, "### Linear evaluation")
    assert table_rows(section(text, "### Fine-tuning")) == FINETUNE
    claim = section(text, "### Comparisons (descriptive)")
    assert "no confirmatory claim. SidAE at w = 0.9, the inner w with the best mean validation objective" in claim
    assert table_rows(claim) == CLAIM
    assert table_rows(section(text, "#### Did pre-training learn?")) == LEARNED
    assert "### Does the claim hold?" not in text  # no design: no verdict
    with Image.open(out / "w_sweep.png") as image:  # a panel per evaluation, each with its lines drawn
        assert image.format == "PNG" and image.size == (round(2 * 5.5 * DPI), round(4.2 * DPI))
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 22) or []}
    assert {(31, 119, 180), (255, 127, 14)} <= colours  # matplotlib's first two line colours: both fractions


def test_verdict_rows_and_terminal_line(multiseed_study: MultiSeedStudy) -> None:
    study = optuna.load_study(study_name=multiseed_study.name, storage=make_storage(multiseed_study.url))
    design, w, verdict = study_verdict(study)
    assert (design, w, verdict) == (None, 0.9, None)  # best validation among inner w; the baselines are no candidates
    rows = claim_rows(complete_trials(study), EVALUATIONS, w)
    assert [(r.evaluation, r.fraction) for r in rows] == [
        ("linear probe", 0.01),
        ("linear probe", 0.1),
        ("fine-tune", 0.01),
        ("fine-tune", 0.1),
    ]
    assert rows[0].vs_dae.values == pytest.approx((6.0, 5.0, 4.0))  # paired by seed
    assert verdict_lines(study) == [
        "descriptive sweep (points named by --w-grid/--seeds): no confirmatory verdict; SidAE at w=0.9 (chosen on "
        "validation of the same seeds) at 1% labels, test linear probe: − DAE +5.00 [+2.52, +7.48] (n=3), − SimSiam "
        "+3.00 [+0.52, +5.48] (n=3) (points, 95 % intervals)",
        "over the untrained encoder, test linear probe at 1% labels: SidAE w=0.9 +10.00 [+7.52, +12.48] (n=3), "
        "DAE +5.00 [+5.00, +5.00] (n=3), SimSiam +7.00 [+2.70, +11.30] (n=3)",
    ]
