"""One study's report: DIR/report.md with PNG figures beside it. For any study: the best trials,
where their time went, parameter importances, the learning curves of the top trials and the best
trial's clean / noised / reconstructed images. For a w-sweep also: test accuracy against w and the
paper's "method x label fraction" tables (studies.analysis.tables) with the controls, and the
primary verdict with its design, error rate and power (studies.analysis.verdict). The header is
shared with a comparison of several studies (studies.analysis.comparison)."""

from __future__ import annotations

import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial
from optuna_dashboard import get_note

from sidae.checkpoint import write_atomic
from sidae.config import DATASET_TITLES
from storage import redact
from studies.analysis import figures
from studies.analysis.claim import EVALUATIONS
from studies.analysis.phases import phase_section
from studies.analysis.stored import StoredStudyError, unfinished
from studies.analysis.summary import (
    CONTROLS,
    SUPERVISED,
    by_w,
    complete_trials,
    counts,
    fraction_label,
    method_table,
    trial_scores,
)
from studies.analysis.tables import control_sentence, paper_table, pct
from studies.analysis.verdict import verdict_section
from studies.record import SEED_TASKS_ATTR
from studies.service.notes import STATUS_MARK, project_relative, redacted_command


def header(studies: list[optuna.Study], url: str) -> list[str]:
    """The top of a report on one study, or of a comparison of several: what each study is, how far
    it got (still running: complete trials only), where it is stored; for one study its note."""
    names = ", ".join(s.study_name for s in studies)
    single = len(studies) == 1
    lines = [
        f"# Study report: {names}" if single else f"# Study comparison: {names}",
        "",
        f"Storage: `{project_relative(redact(url))}`. Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
        + (
            ""
            if single
            else " Each study's own report (`python studies/report.py --name NAME`) has its best trials, "
            "importances and reconstructions."
        ),
        "",
    ]
    for study in studies:
        lines.append(("" if single else "- ") + _about(study))
    lines.append("")
    if single:
        lines += _note(studies[0])
    return lines


def _about(study: optuna.Study) -> str:
    """`NAME`: `STUDY` on DATA SET, budget `B`; trials: COUNTS, and whether it still runs."""
    attrs = study.user_attrs
    todo = unfinished(study)
    running = (
        f" **Still running** ({', '.join(f'{n} {state}' for state, n in todo.items())}): this report covers the "
        f"{len(complete_trials(study))} trials complete so far. Run it again for the rest. (Trials stay RUNNING "
        "after their driver stopped until the study's command is run again.)"
        if todo
        else ""
    )
    return (
        f"`{study.study_name}`: `{attrs.get('study', '?')}` on {dataset_title(study)}, budget "
        f"`{attrs.get('budget', '?')}`; trials: {counts(study)}.{running}"
    )


def _note(study: optuna.Study) -> list[str]:
    """The study's dashboard note (what it is, the command that ran it), or that command alone."""
    note = get_note(study).split(STATUS_MARK)[0].strip()  # the status part: the sections below
    command = study.user_attrs.get("command")
    if note:
        return ["## About this study", "", note, ""]
    if command:
        return ["Reproduce:", "", f"```\n{redacted_command(command)}\n```", ""]
    return []


def dataset_title(study: optuna.Study) -> str:
    """The data set as its numbers must be named ("CIFAR-10 (JPEG copy)", not just "CIFAR-10")."""
    dataset = study.user_attrs.get("dataset", "")
    return DATASET_TITLES.get(dataset, dataset or "the study's data set")


def write_report(study: optuna.Study, url: str, artifact_folder: Path, out: Path, top: int) -> Path:
    """report.md and its figures in `out`; StoredStudyError when no trial is complete."""
    trials = complete_trials(study)
    if not trials:
        raise StoredStudyError(
            f"study {study.study_name!r} has no complete trials yet ({counts(study) or 'no trials'}); nothing to report"
        )
    out.mkdir(parents=True, exist_ok=True)
    best = sorted(trials, key=lambda t: t.value, reverse=True)[:top]
    lines = header([study], url)
    if study.user_attrs.get("study") == "w-sweep":
        lines += w_sweep_section(study, trials, out)
    lines += best_trials_section(best)
    lines += phase_section(trials, study.user_attrs.get(SEED_TASKS_ATTR))
    lines += importance_section(study, out)
    lines += learning_curve_section(study.study_name, best, out)
    lines += reconstruction_section(best[0], artifact_folder, out)
    path = out / "report.md"
    write_atomic(path, ("\n".join(lines).rstrip() + "\n").encode())
    return path


def w_sweep_section(study: optuna.Study, trials: list[FrozenTrial], out: Path) -> list[str]:
    tables = {attr: method_table(study, trials, attr) for attr in EVALUATIONS}
    panels = {EVALUATIONS[attr]: table for attr in EVALUATIONS if (table := by_w(trials, attr))}
    if not panels:
        return ["## Accuracy against w", "", "No complete trial has test accuracies yet.", ""]
    seeds = max(s.n for table in panels.values() for row in table.values() for s in row.values())
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed: no spread"
    supervised = tables["test_finetune"].get(SUPERVISED)
    figures.w_sweep_figure(
        panels,
        f"{study.study_name}: test accuracy on {dataset_title(study)} against w ({spread})",
        out / "w_sweep.png",
        references={EVALUATIONS["test_finetune"]: supervised} if supervised else None,
    )
    lines = ["## Accuracy against w", "", "![test accuracy against w](w_sweep.png)", ""]
    for attr, title in (("test_linear", "Linear evaluation"), ("test_finetune", "Fine-tuning")):
        lines += [f"### {title}", ""]
        if tables[attr]:
            lines += [
                f"Test accuracy (%) on {dataset_title(study)} by label fraction, {spread}; best per column in bold.",
                "",
                *paper_table(tables[attr]),
                "",
            ]
            if any(control in tables[attr] for control in CONTROLS):
                lines += [control_sentence(), ""]
        else:
            lines += [f"No {EVALUATIONS[attr]} results: this study's budget does not run it.", ""]
    if supervised:
        lines += [
            f"`{SUPERVISED}`: the same backbone fine-tuned from a random initialisation on the same labels, "
            "steps and seeds (no pre-training): the bar pre-training has to clear.",
            "",
        ]

    return lines + verdict_section(study, EVALUATIONS)


def best_trials_section(top: list[FrozenTrial]) -> list[str]:
    params = list(dict.fromkeys(p for t in top for p in t.params))
    measured = [{attr: trial_scores(t, attr) for attr in EVALUATIONS} for t in top]
    scores = [(attr, f) for attr in EVALUATIONS for f in sorted({f for m in measured for f in m[attr]})]
    header = ["trial", "objective", *params, *(f"{EVALUATIONS[a]} {fraction_label(f)}" for a, f in scores), "wall (s)"]
    lines = [
        "## Best trials",
        "",
        "Objective: validation linear-probe accuracy; the other scores are test accuracies in %.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for t, m in zip(top, measured, strict=True):
        cells = [
            str(t.number),
            f"{t.value:.4f}",
            *(_param(t.params.get(p)) for p in params),
            *(pct(m[a][f]) if f in m[a] else "-" for a, f in scores),
            f"{t.user_attrs['wall_seconds']:.0f}" if "wall_seconds" in t.user_attrs else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _param(value: object) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def importance_section(study: optuna.Study, out: Path) -> list[str]:
    lines = ["## Parameter importances", ""]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importances = optuna.importance.get_param_importances(study)  # PED-ANOVA, as the dashboard
    if not importances:
        return lines + ["No searched parameter varies between the complete trials.", ""]
    figures.importance_figure(importances, f"{study.study_name}: parameter importances", out / "importances.png")
    lines += ["![parameter importances](importances.png)", "", "| parameter | importance |", "|---|---:|"]
    lines += [f"| {p} | {v:.3f} |" for p, v in importances.items()]
    cautions = [f"> Caution: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
    return lines + [""] + (cautions + [""] if cautions else [])


def learning_curve_section(name: str, top: list[FrozenTrial], out: Path) -> list[str]:
    curves = [t for t in top if t.intermediate_values]
    if not curves:
        return []
    figures.learning_curve_figure(curves, f"{name}: learning curves of the best trials", out / "learning_curves.png")
    return [
        "## Learning curves",
        "",
        "Validation kNN accuracy after each epoch.",
        "",
        "![learning curves](learning_curves.png)",
        "",
    ]


def reconstruction_section(best: FrozenTrial, artifact_folder: Path, out: Path) -> list[str]:
    lines = [f"## Reconstructions of the best trial ({best.number})", ""]
    artifact_id = best.user_attrs.get("artifact:reconstructions")
    if artifact_id is None:
        return lines + ["This trial stored no reconstruction grid.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "grid.png"
        try:
            download_artifact(
                artifact_store=FileSystemArtifactStore(artifact_folder), file_path=str(grid), artifact_id=artifact_id
            )
        except (ArtifactNotFound, OSError):
            return lines + [f"Grid {artifact_id} not found in {artifact_folder} (see --artifact-dir).", ""]
        params = ", ".join(f"{k}={_param(v)}" for k, v in best.params.items())
        figures.reconstruction_figure(
            grid, f"trial {best.number} ({params}): validation images", out / "reconstructions.png"
        )
    lines += ["![clean, noised and reconstructed images](reconstructions.png)", ""]
    if best.params.get("w") == 1.0:
        lines += ["At w = 1 (SimSiam) the decoder is not trained: its row shows what an untrained decoder draws.", ""]
    return lines
