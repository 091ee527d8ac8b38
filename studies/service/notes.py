"""The study's note in optuna-dashboard (markdown, on the study's Note page): what the study
searches, on which data, with which budget, and the command that reproduces it, so a study
found in a shared database explains itself."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import optuna
from optuna_dashboard import save_note

from sidae.config import DATASET_TITLES
from storage import redact
from studies.record import fraction_label
from studies.service.budgets import Budget
from studies.service.catalogue import Study, grid_points

_SQLITE = "sqlite:///"


def study_note(
    study: Study, budget: Budget, dataset: str, primary_fraction: float, command: str, seed_budget: int | None = None
) -> str:
    """The note's markdown; no heading: the dashboard shows the study's name above it, and the
    report puts it under its own. seed_budget: an adaptive w-sweep's (--until-decided)."""
    fractions = ", ".join(fraction_label(f) for f in budget.label_fractions)
    lines = [
        f"**Searches** (study `{study.name}`): {study.summary}.",
        f"**Data set**: `{dataset}` ({DATASET_TITLES.get(dataset, dataset)}).",
        f"**Budget** `{budget.name}`: {_budget_text(study, budget, seed_budget)}.",
        f"**Objective**: validation linear-probe accuracy at {primary_fraction:.0%} labels (maximised); "
        f"the learning curve is the validation kNN accuracy per epoch. Test-set accuracies at {fractions} labels "
        "are the trials' user attributes `test_linear` (linear probe) and `test_finetune` (fine-tuning).",
        "**Reproduce** (from the project folder; rerunning resumes the study):",
        f"```\n{redacted_command(command) if command else '(started from Python: no command recorded)'}\n```",
    ]
    return "\n\n".join(lines) + "\n"


def _budget_text(study: Study, budget: Budget, seed_budget: int | None) -> str:
    images = f"{budget.train_limit} pre-training images" if budget.train_limit else "the whole training set"
    parts = [f"{budget.epochs} epochs per trial on {images}"]
    if study.grid is not None:
        axes = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in study.grid(budget).items())
        parts.append(f"grid of {len(grid_points(study, budget))} points ({axes})")
        if seed_budget is not None:
            parts.append(
                f"then more seeds, up to {seed_budget}, only at the w values of comparisons the verdict "
                "has not decided yet (--until-decided)"
            )
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


def save_study_note(
    optuna_study: optuna.Study,
    study: Study,
    budget: Budget,
    dataset: str,
    primary_fraction: float,
    command: str,
    seed_budget: int | None = None,
) -> None:
    """Write the study's dashboard note (a new version each call; the dashboard shows the last)."""
    save_note(optuna_study, study_note(study, budget, dataset, primary_fraction, command, seed_budget))
