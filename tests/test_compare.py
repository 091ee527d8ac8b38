"""`studies/report.py --name A --name B`: two three-seed w-sweeps with known numbers
(tests/multiseed_study.py) in one report, checked cell by cell: each study's columns are the
cells of its own report (tests/test_report_multiseed.py checks those by hand) and the second
study's, worked out by hand here; the descriptive rows side by side, each at its own chosen w,
and each study's verdict (here none: their seeds were named)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from PIL import Image

from storage import make_storage
from studies import report
from tests.multiseed_study import ACCURACY, VALIDATION, Table, write_study
from tests.test_report_multiseed import CLAIM, FINETUNE, LINEAR, section, table_rows

A, B = "w-sweep-mnist", "w-sweep-mnist-normalized"


def shifted(points: float) -> Table:
    """ACCURACY with SidAE at w = 0.5 `points` better on every seed."""
    return {
        attr: {
            f: {w: tuple(a + points * (w == 0.5) for a in accuracies) for w, accuracies in per_w.items()}
            for f, per_w in by_fraction.items()
        }
        for attr, by_fraction in ACCURACY.items()
    }


@pytest.fixture
def two_studies(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    write_study(url, A)
    write_study(url, B, accuracy=shifted(3), validation={**VALIDATION, 0.5: 0.92})  # B chooses w = 0.5
    return url


def compare(url: str, out: Path, *names: str) -> int:
    return report.main([arg for name in names for arg in ("--name", name)] + ["--storage", url, "--out", str(out)])


def test_two_studies_side_by_side_cell_by_cell(
    two_studies: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "compare"
    assert compare(two_studies, out, A, B) == 0
    assert capsys.readouterr().out == f"wrote {out / 'report.md'}\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "w_sweep.png"]
    with Image.open(out / "w_sweep.png") as image:
        assert image.format == "PNG" and image.size[0] > 1.5 * image.size[1]  # two panels side by side
    text = (out / "report.md").read_text()
    assert text.startswith(f"# Study comparison: {A}, {B}\n")
    assert f"- `{A}`: `w-sweep` on MNIST, budget `cpu`; trials: 12 complete, 1 pruned." in text

    # Columns: 1% A, 1% B, 10% A, 10% B. A's cells are its own report's; B's by hand.
    b_linear = {
        "DAE": ["82.00 ± 2.00", "91.00 ± 1.00"],
        "SidAE w=0.5": ["86.00 ± 2.00", "**95.00 ± 1.00**"],
        "SidAE w=0.9": ["**87.00 ± 1.00**", "91.33 ± 1.53"],
        "SimSiam": ["84.00 ± 1.00", "93.00 ± 1.00"],
        "untrained encoder": ["77.00 ± 2.00", "86.00 ± 1.00"],  # the same controls as A's
        "raw pixels": ["86.00 ± 2.65", "94.00 ± 0.00"],  # ahead of every method at 10 %, never bold
    }
    b_finetune = {
        "DAE": ["86.00 ± 1.00", "95.00 ± 0.00"],
        "SidAE w=0.5": ["**89.00 ± 0.00**", "**97.33 ± 0.58**"],
        "SidAE w=0.9": ["88.00 ± 1.00", "96.00 ± 1.00"],
        "SimSiam": ["87.00 ± 1.00", "95.33 ± 1.53"],
        "supervised": ["72.00 ± 2.00", "91.00 ± 1.00"],
    }
    for heading, own, b_cells in (
        ("### Linear evaluation", LINEAR, b_linear),
        ("### Fine-tuning", FINETUNE, b_finetune),
    ):
        header, *rows = table_rows(section(text, heading))
        assert header == ["method", f"1% labels, {A}", f"1% labels, {B}", f"10% labels, {A}", f"10% labels, {B}"]
        assert [row[0] for row in rows] == [row[0] for row in own[1:]]
        for row, own_row in zip(rows, own[1:], strict=True):
            b = b_cells[row[0]]
            assert row[1:] == [own_row[1], b[0], own_row[2], b[1]], row[0]
    assert "`untrained encoder` and `raw pixels`: the same linear probe" in section(text, "### Linear evaluation")

    claim = section(text, "## Does the claim hold?")
    assert f"`{A}`: **descriptive (no design)**; `{B}`: **descriptive (no design)**" in claim
    assert f"`{A}`: w = 0.9, `{B}`: w = 0.5" in claim
    header, *rows = table_rows(claim)
    assert header == ["evaluation", f"{A}: − DAE", f"{A}: − SimSiam", f"{B}: − DAE", f"{B}: − SimSiam"]
    # B's SidAE (w = 0.5) is 3 points up on every seed: at 1 %, 86 88 84 against the DAE's 80 82 84,
    # differences 6 6 0, 4 +- 4.303 x 3.464 / 1.732 (a 95 % t interval on 2 degrees of freedom)
    b_claim = [
        ["+4.00 [-4.61, +12.61] (n=3)", "+2.00 [-5.45, +9.45] (n=3)"],
        ["+4.00 [+1.52, +6.48] (n=3)", "+2.00 [-2.30, +6.30] (n=3)"],
        ["+3.00 [+0.52, +5.48] (n=3)", "+2.00 [-0.48, +4.48] (n=3)"],
        ["+2.33 [+0.90, +3.77] (n=3)", "+2.00 [-2.30, +6.30] (n=3)"],
    ]
    assert rows == [[own[0], *own[1:3], *b] for own, b in zip(CLAIM[1:], b_claim, strict=True)]


def test_one_name_is_the_single_study_report(two_studies: str, tmp_path: Path) -> None:
    assert compare(two_studies, tmp_path / "one", A) == 0
    text = (tmp_path / "one" / "report.md").read_text()
    assert text.startswith(f"# Study report: {A}\n") and "## Best trials" in text
    assert table_rows(section(text, "### Linear evaluation")) == LINEAR


def test_what_cannot_be_compared_is_one_line(
    two_studies: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = optuna.create_study(study_name="noise", storage=make_storage(two_studies), direction="maximize")
    study.set_user_attr("study", "noise-sweep")
    for names, message in (
        ((A, "noise"), "error: study 'noise' is a noise-sweep study: only w-sweeps can be compared"),
        ((A, A), f"error: each --name once: {A}, {A}"),
        ((A, "nope"), "error: no study named 'nope' in this storage; studies: "),
    ):
        assert compare(two_studies, tmp_path / "r", *names) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
