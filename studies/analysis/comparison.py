"""Several w-sweeps in one report: `python studies/report.py --name A --name B --out DIR`.

For the question "what changed between these studies?" (plain and normalised weighting, two
data sets, two budgets): DIR/report.md with each table's columns for every study next to each
other, one accuracy-against-w figure with all the studies (a line style per study), and the
verdict rows of the paper's claim side by side, each study at its own validation-chosen w. The
cells are exactly those of each study's own report (studies.analysis.tables).
"""

from __future__ import annotations

from pathlib import Path

import optuna

from sidae.checkpoint import write_atomic
from studies.analysis import figures
from studies.analysis.claim import EVALUATIONS, ClaimRow, claim_rows, study_verdict
from studies.analysis.reports import header
from studies.analysis.stored import StoredStudyError
from studies.analysis.summary import (
    CONTROLS,
    DAE,
    SIMSIAM,
    by_w,
    complete_trials,
    counts,
    fraction_label,
    method_name,
    method_table,
)
from studies.analysis.tables import control_sentence, side_by_side


def check_comparable(studies: list[optuna.Study]) -> None:
    """StoredStudyError unless every study is a w-sweep with a complete trial."""
    for study in studies:
        if study.user_attrs.get("study") != "w-sweep":
            kind = study.user_attrs.get("study", "unknown")
            raise StoredStudyError(f"study {study.study_name!r} is a {kind} study: only w-sweeps can be compared")
        if not complete_trials(study):
            raise StoredStudyError(
                f"study {study.study_name!r} has no complete trials yet "
                f"({counts(study) or 'no trials'}); nothing to compare"
            )


def claim_side_by_side(studies: list[optuna.Study]) -> list[str]:
    """Each study's primary verdict (or "descriptive") and its descriptive rows next to each
    other, as in each study's report (studies/analysis/verdict.py)."""
    chosen: dict[str, float | None] = {}
    words: dict[str, str] = {}
    rows: dict[str, dict[tuple[str, float], ClaimRow]] = {}
    for study in studies:
        design, w, verdict = study_verdict(study)
        seeds = verdict.design.confirm_seeds[: verdict.vs_dae.n] if verdict else None
        found = claim_rows(complete_trials(study), EVALUATIONS, w, seeds) if design is None or verdict else []
        name = study.study_name
        chosen[name], rows[name] = w, {(r.evaluation, r.fraction): r for r in found}
        words[name] = verdict.word if verdict else "descriptive (no design)" if design is None else "not reached"
    keys = sorted(
        {k for found in rows.values() for k in found}, key=lambda k: (list(EVALUATIONS.values()).index(k[0]), k[1])
    )
    if not keys:
        return []
    names = [s.study_name for s in studies]
    dae, simsiam = method_name(DAE), method_name(SIMSIAM)
    lines = [
        "## Does the claim hold?",
        "",
        "Primary verdicts (each study's report states its design, error rate and power): "
        + "; ".join(f"`{n}`: **{words[n]}**" for n in names)
        + ".",
        "",
        "Each study's SidAE at its own chosen w ("
        + ", ".join(f"`{n}`: w = {chosen[n]:g}" if chosen[n] is not None else f"`{n}`: no inner w" for n in names)
        + "), against each baseline: test accuracy difference in points, mean [95 % t interval] (n seeds), on the "
        "confirmation seeds of a confirmatory study and on every seed of a descriptive one (there w was chosen on "
        "the same seeds: optimistic). Descriptive rows, not claims; '-' where a study lacks the row.",
        "",
        "| evaluation | " + " | ".join(f"{n}: − {dae} | {n}: − {simsiam}" for n in names) + " |",
        "|---|" + "---:|---:|" * len(names),
    ]
    for key in keys:
        cells = []
        for name in names:
            row = rows[name].get(key)
            cells += [str(row.vs_dae), str(row.vs_simsiam)] if row else ["-", "-"]
        lines.append(f"| {key[0]}, {fraction_label(key[1])} labels | " + " | ".join(cells) + " |")
    return lines + [""]


def write_comparison(studies: list[optuna.Study], url: str, out: Path) -> Path:
    """report.md and w_sweep.png in `out` for `studies` (w-sweeps, in the order given)."""
    check_comparable(studies)
    out.mkdir(parents=True, exist_ok=True)
    lines = header(studies, url)
    panels = {
        s.study_name: {EVALUATIONS[a]: t for a in EVALUATIONS if (t := by_w(complete_trials(s), a))} for s in studies
    }
    names = " vs ".join(s.study_name for s in studies)
    figures.w_sweep_comparison_figure(
        panels, f"test accuracy against w: {names} (mean ± std over seeds)", out / "w_sweep.png"
    )
    lines += ["## Accuracy against w", "", "![test accuracy against w, all studies](w_sweep.png)", ""]
    for attr, heading in (("test_linear", "Linear evaluation"), ("test_finetune", "Fine-tuning")):
        tables = {s.study_name: method_table(s, complete_trials(s), attr) for s in studies}
        ws = sorted({w for s in studies for w in by_w(complete_trials(s), attr)})
        lines += [f"### {heading}", ""]
        if any(tables.values()):
            lines += [
                "Test accuracy (%) by label fraction, mean ± std over each study's seeds; best of each column in bold.",
                "",
                *side_by_side(tables, ws),
                "",
            ]
            if any(control in table for table in tables.values() for control in CONTROLS):
                lines += [control_sentence(), ""]
        else:
            lines += [f"No {EVALUATIONS[attr]} results in these studies.", ""]
    lines += claim_side_by_side(studies)
    path = out / "report.md"
    write_atomic(path, ("\n".join(lines).rstrip() + "\n").encode())
    return path
