"""Write a study's report: `python studies/report.py --name w-sweep-mnist --out reports/w-sweep`.

DIR/report.md with PNG figures beside it. For any study: the best trials, parameter importances,
the learning curves of the top trials and the best trial's clean / noised / reconstructed
images. For a w-sweep also: test accuracy against w (one line per label fraction, mean and
spread over seeds) and the paper's "method x label fraction" tables for linear evaluation and
fine-tuning, best per column in bold, with the controls, and the primary verdict with its design,
error rate and power (studies/analysis/claim.py, verdict.py). On a study that is still running it reports the trials
complete so far, and says so.

`--name A --name B` compares w-sweeps in one report instead (studies/cli/compare.py): their
tables side by side, one w-plot with all of them, their verdict rows next to each other.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial
from optuna_dashboard import get_note

from sidae.arguments import Parser, bounded
from sidae.checkpoint import write_atomic
from sidae.config import DATASET_TITLES
from storage import StorageError, artifact_dir_for, default_url, redact
from studies.analysis import figures
from studies.analysis.claim import EVALUATIONS
from studies.analysis.controls import CONTROL_NAMES
from studies.analysis.phases import phase_section
from studies.analysis.stored import StoredStudyError, load_existing_study, open_existing_storage, unfinished
from studies.analysis.summary import (
    CONTROLS,
    SUPERVISED,
    Spread,
    by_w,
    column_best,
    complete_trials,
    counts,
    fraction_label,
    fractions_of,
    marked,
    method_table,
    trial_scores,
)
from studies.analysis.verdict import verdict_section
from studies.service.notes import STATUS_MARK, project_relative, redacted_command


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python studies/report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--name",
        required=True,
        action="append",
        help="the study's name in the storage, e.g. w-sweep-mnist; give it again for each further "
        "w-sweep to compare them in one report (tables, w-plot and verdicts side by side)",
    )
    p.add_argument("--out", required=True, type=Path, help="folder for report.md and the figures (created)")
    p.add_argument("--storage", help="the study storage URL (default: studies.db in the project folder)")
    p.add_argument("--artifact-dir", help="the study's artifact folder (default: beside the SQLite file)")
    p.add_argument(
        "--top",
        type=bounded(int, minimum=1),
        default=5,
        help="how many of the best trials to list and plot, >= 1 (default 5)",
    )
    return p


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def paper_table(table: dict[str, dict[float, Spread]]) -> list[str]:
    """One row per method (by w: DAE first, SimSiam last, then the supervised baseline or the
    controls), one column per label fraction, the best mean of each column in bold (never a
    control's: summary.column_best)."""
    fractions, best = fractions_of(table), column_best(table)
    seeds = max(s.n for row in table.values() for s in row.values())
    lines = [
        "| method | " + " | ".join(f"{fraction_label(f)} labels" for f in fractions) + " |",
        "|---|" + "---:|" * len(fractions),
    ]
    for method, row in table.items():
        cells = [cell(row.get(f), seeds, marked(method, row.get(f), best, f)) for f in fractions]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def cell(value: Spread | None, seeds: int, best: bool) -> str:
    """Accuracy in percent, mean ± std over seeds; (n=k) where fewer of the seeds are complete;
    bold when `best` (summary.marked: the best of its column)."""
    if value is None:
        return "-"
    text = f"{pct(value.mean)} ± {pct(value.std)}" if value.n > 1 else pct(value.mean)
    text = text if value.n == seeds else f"{text} (n={value.n})"
    return f"**{text}**" if best else text


def control_sentence() -> str:
    """What the linear tables' control rows are (a single study's report and a comparison)."""
    untrained, pixels = (f"`{CONTROL_NAMES[name]}`" for name in ("untrained", "pixels"))
    return (
        f"{untrained} and {pixels}: the same linear probe, on the same labels and seeds, on the backbone at the "
        "initial weights each seed's trials start from (no training at all) and on the images' pixels (no "
        "encoder): what a pre-trained encoder has to beat to have learnt anything a linear probe can use. "
        "They are never in bold: the bold cell is the best pre-training method."
    )


def dataset_title(study: optuna.Study) -> str:
    """The data set as its numbers must be named ("CIFAR-10 (JPEG copy)", not just "CIFAR-10")."""
    dataset = study.user_attrs.get("dataset", "")
    return DATASET_TITLES.get(dataset, dataset or "the study's data set")


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


def header(study: optuna.Study, url: str, done: int) -> list[str]:
    attrs = study.user_attrs
    kind = (
        f"`{attrs['study']}` on `{attrs['dataset']}` ({dataset_title(study)}), budget `{attrs['budget']}`. "
        if {"study", "dataset", "budget"} <= attrs.keys()
        else ""
    )  # set by studies/run.py
    lines = [
        f"# Study report: {study.study_name}",
        "",
        f"{kind}Trials: {counts(study)}. Storage: `{project_relative(redact(url))}`. "
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    todo = unfinished(study)
    if todo:
        waiting = ", ".join(f"{n} {state}" for state, n in todo.items())
        lines += [
            f"> **Still running** ({waiting}): this report covers the {done} trials complete so far. "
            "Run it again for the rest. (Trials stay RUNNING after their driver stopped until the study's "
            "command is run again.)",
            "",
        ]
    note = get_note(study).split(STATUS_MARK)[0].strip()  # the status part: the sections below
    command = attrs.get("command")
    if note:
        lines += ["## About this study", "", note, ""]
    elif command:
        lines += ["Reproduce:", "", f"```\n{redacted_command(command)}\n```", ""]
    return lines


def write_report(study: optuna.Study, url: str, artifact_folder: Path, out: Path, top: int) -> Path:
    """report.md and its figures in `out`; StoredStudyError when no trial is complete."""
    trials = complete_trials(study)
    if not trials:
        raise StoredStudyError(
            f"study {study.study_name!r} has no complete trials yet ({counts(study) or 'no trials'}); nothing to report"
        )
    out.mkdir(parents=True, exist_ok=True)
    best = sorted(trials, key=lambda t: t.value, reverse=True)[:top]
    lines = header(study, url, len(trials))
    if study.user_attrs.get("study") == "w-sweep":
        lines += w_sweep_section(study, trials, out)
    lines += best_trials_section(best)
    lines += phase_section(trials)
    lines += importance_section(study, out)
    lines += learning_curve_section(study.study_name, best, out)
    lines += reconstruction_section(best[0], artifact_folder, out)
    path = out / "report.md"
    write_atomic(path, ("\n".join(lines).rstrip() + "\n").encode())
    return path


def compare(storage: optuna.storages.BaseStorage, url: str, names: list[str], out: Path) -> int:
    """`--name A --name B ...`: one report of the studies side by side (studies/cli/compare.py)."""
    from studies.cli.compare import write_comparison  # it builds on this module's cells

    if len(set(names)) < len(names):
        raise StoredStudyError("each --name once: " + ", ".join(names))
    studies = [load_existing_study(storage, name) for name in names]
    path = write_comparison(studies, url, out)
    still = [s.study_name for s in studies if unfinished(s)]
    print(f"wrote {path}" + (f" ({', '.join(still)} still running: complete trials only)" if still else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    url = args.storage or default_url()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_existing_storage(url)
        if len(args.name) > 1:
            return compare(storage, url, args.name, args.out)
        study = load_existing_study(storage, args.name[0])
        path = write_report(study, url, artifact_dir_for(url, args.artifact_dir), args.out, args.top)
    except (StorageError, StoredStudyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # --out is a file, or not writable
        print(f"error: cannot write the report in {args.out}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"wrote {path}" + (" (the study is still running: complete trials only)" if unfinished(study) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
