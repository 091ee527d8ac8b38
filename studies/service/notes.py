"""The study's note in optuna-dashboard (markdown, on the study's Note page): what the study
searches, on which data, with which budget, and the command that reproduces it, so a study
found in a shared database explains itself."""

from __future__ import annotations

import os
import shlex
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna_dashboard import get_note, save_note

from sidae.config import DATASET_TITLES
from storage import redact
from studies.analysis.claim import Design
from studies.analysis.controls import CONTROL_NAMES, control_scores
from studies.analysis.verdict import design_text, verdict_section
from studies.record import fraction_label
from studies.service.budgets import Budget
from studies.service.catalogue import Study, grid_points

_SQLITE = "sqlite:///"
# Starts the part of the note that the driver refreshes after each round (a report, which
# computes the same from the trials itself, shows the note only up to it).
STATUS_MARK = "---\n\n**Where the study stands** (refreshed after each round of trials)"


@dataclass(frozen=True)
class About:
    """What a study's note says of it that stays fixed for the study's life."""

    study: Study
    budget: Budget
    dataset: str
    command: str
    design: Design | None = None  # a confirmatory w-sweep's


def name_objective(optuna_study: optuna.Study, primary_fraction: float) -> None:
    """Name the objective where optuna-dashboard shows it (else "Objective 0")."""
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and still in 5.1
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna_study.set_metric_names([f"validation linear probe, {primary_fraction:.0%} labels"])


def study_note(about: About, status: list[str] | None = None) -> str:
    """The note's markdown; no heading: the dashboard shows the study's name above it, and the
    report puts it under its own. status: where the study stands (controls, verdict), refreshed
    after each round."""
    study, budget, dataset, design = about.study, about.budget, about.dataset, about.design
    command, primary_fraction = about.command, budget.primary_fraction
    fractions = ", ".join(fraction_label(f) for f in budget.label_fractions)
    lines = [
        f"**Searches** (study `{study.name}`): {study.summary}.",
        f"**Data set**: `{dataset}` ({DATASET_TITLES.get(dataset, dataset)}).",
        f"**Budget** `{budget.name}`: {_budget_text(study, budget)}.",
        *([f"**Plan** (confirmatory, declared before the run): {design_text(design)}."] if design else []),
        f"**Objective**: validation linear-probe accuracy at {primary_fraction:.0%} labels (maximised); "
        f"the learning curve is the validation kNN accuracy per epoch. Test-set accuracies at {fractions} labels "
        "are the trials' user attributes `test_linear` (linear probe) and `test_finetune` (fine-tuning).",
        "**Reproduce** (from the folder it was started in; rerunning resumes the study):",
        f"```\n{redacted_command(command) if command else '(started from Python: no command recorded)'}\n```",
    ]
    return "\n\n".join(lines) + "\n" + (f"\n{STATUS_MARK}\n\n" + "\n".join(status) + "\n" if status else "")


def _budget_text(study: Study, budget: Budget) -> str:
    images = f"{budget.train_limit} pre-training images" if budget.train_limit else "the whole training set"
    batch = f" at batch {budget.batch_size}" if budget.batch_size else ""
    parts = [f"{budget.epochs} epochs per trial on {images}{batch}"]
    if budget.backbone:
        parts.append(f"encoder {budget.backbone} of width {budget.width}")
    if study.grid is not None:
        axes = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in study.grid(budget).items())
        parts.append(f"grid of {len(grid_points(study, budget))} points ({axes})")
    else:
        parts.append(f"{budget.trials} trials")
    parts.append(f"fine-tuning {budget.finetune_steps} steps" if budget.finetune_steps else "no fine-tuning")
    return ", ".join(parts)


def redacted_command(command: str) -> str:
    """The command with any storage password replaced by *** (a note is shown to everyone who
    opens the dashboard) and paths made relative to the project (see project_relative)."""
    return shlex.join(project_relative(redact(word)) for word in shlex.split(command))


def project_relative(word: str) -> str:
    """An absolute path in or beside the current folder (or a SQLite URL of one) as the path
    relative to it (`runs/x.db`, `../shared/data`), as the user typed it there: a report that
    names this machine's folders cannot be rerun anywhere else. Other words as they are."""
    here = Path.cwd()
    prefix, path = (_SQLITE, word[len(_SQLITE) :]) if word.startswith(_SQLITE) else ("", word)
    if not os.path.isabs(path) or not Path(path).is_relative_to(here.parent):
        return word
    return prefix + os.path.relpath(path, here)


def save_study_note(optuna_study: optuna.Study, about: About) -> None:
    """Write the study's dashboard note with where it stands now: its controls and verdict (a
    new version only when the text changed; the dashboard shows the last)."""
    note = study_note(about, status_lines(optuna_study))
    if get_note(optuna_study) != note:
        save_note(optuna_study, note)


def status_lines(optuna_study: optuna.Study) -> list[str]:
    """The controls (mean over seeds per label fraction) and the verdict section, as markdown."""
    from studies.analysis.claim import EVALUATIONS  # the analysis layer reads the stored trials

    lines = []
    for name, title in CONTROL_NAMES.items():
        scores = control_scores(optuna_study, name)
        fractions = sorted({f for per in scores.values() for f in per})
        if fractions:
            cells = ", ".join(
                f"{fraction_label(f)} {100 * statistics.fmean(per[f] for per in scores.values() if f in per):.2f} %"
                for f in fractions
            )
            lines.append(f"- **Control, {title}** (test linear probe, mean of {len(scores)} seeds): {cells}")
    return (["**Controls**", "", *lines, ""] if lines else []) + verdict_section(optuna_study, EVALUATIONS)
