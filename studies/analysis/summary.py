"""What a study found, as text tables: the best configuration, and for w-sweeps the accuracy per
w at each label fraction (mean +- std over seeds), SimSiam (w = 1) and the DAE (w = 0) marked,
then the supervised baseline (fine-tuning) or the controls (linear evaluation: untrained encoder,
raw pixels), which the study stores once per seed.

Label fractions are numbers here and in every analysis module. The stored ones are JSON keys
(sidae.evaluate.fraction_key's "0.01"): studies.record's `by_fraction` reads them once,
`fraction_label` is how every report and figure prints one.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from studies.analysis.controls import CONTROL_NAMES, control_scores
from studies.record import SUPERVISED_ATTR, by_fraction, fraction_label

SIMSIAM, DAE = 1.0, 0.0  # the w of the two methods SidAE interpolates
BASELINES = {SIMSIAM: "SimSiam", DAE: "DAE"}
SUPERVISED = "supervised"  # the backbone fine-tuned from scratch on the same labels (studies.service.baseline)
CONTROLS = tuple(CONTROL_NAMES.values())  # rows of the linear table that are never marked best


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f}" if self.n > 1 else f"{self.mean:.4f}"


def spread(values: list[float]) -> Spread:
    return Spread(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


def trial_scores(trial: FrozenTrial, attr: str) -> dict[float, float]:
    """The trial's accuracy per label fraction in user attribute `attr` (e.g. "test_linear")."""
    return by_fraction(trial.user_attrs.get(attr))


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def method_name(w: float) -> str:
    return BASELINES.get(w, f"SidAE w={w:g}")


def by_w(trials: list[FrozenTrial], attr: str) -> dict[float, dict[float, Spread]]:
    """For each w, the spread over trials (seeds) of user attribute `attr` (a fraction -> accuracy map)."""
    values: dict[float, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        for fraction, accuracy in trial_scores(trial, attr).items():
            values[float(trial.params["w"])][fraction].append(accuracy)
    return {w: {f: spread(v) for f, v in sorted(per.items())} for w, per in sorted(values.items())}


def method_table(study: optuna.Study, trials: list[FrozenTrial], attr: str) -> dict[str, dict[float, Spread]]:
    """Rows "DAE", "SidAE w=...", "SimSiam" (by w, from the study's complete `trials`), then, for
    fine-tuning, the supervised baseline and, for linear evaluation, the controls "untrained
    encoder" and "raw pixels" (over the seeds the study stores them for); columns are label
    fractions; cells spread over seeds."""
    table = {method_name(w): row for w, row in by_w(trials, attr).items()}
    if attr == "test_finetune":
        supervised = study.user_attrs.get(SUPERVISED_ATTR) or {}
        if supervised:
            table[SUPERVISED] = over_seeds(by_fraction(scores) for scores in supervised.values())
    if attr == "test_linear":
        for name, row in CONTROL_NAMES.items():
            if per_seed := control_scores(study, name):
                table[row] = over_seeds(per_seed.values())
    return table


def over_seeds(per_seed: Iterable[Mapping[float, float]]) -> dict[float, Spread]:
    """Label fraction -> the spread over seeds of a result stored once per seed."""
    per_fraction: dict[float, list[float]] = defaultdict(list)
    for scores in per_seed:
        for fraction, accuracy in scores.items():
            per_fraction[fraction].append(accuracy)
    return {f: spread(v) for f, v in sorted(per_fraction.items())}


def fractions_of(table: Mapping[Any, Mapping[float, Spread]]) -> list[float]:
    """The label fractions (columns) of a table of rows, smallest first."""
    return sorted({f for row in table.values() for f in row})


def column_best(table: Mapping[Any, Mapping[float, Spread]]) -> dict[float, float]:
    """The best mean of each label fraction's column among the methods and the supervised
    baseline: the cell a report marks (starred, or bold). The controls (CONTROLS) never count
    and are never marked (see `marked`): they are what the methods must beat, not contenders, so
    a control ahead of every method shows by its number, and the mark stays on the best method."""
    contenders = [row for method, row in table.items() if method not in CONTROLS]
    columns = {f: [row[f].mean for row in contenders if f in row] for f in fractions_of(table)}
    return {f: max(means) for f, means in columns.items() if means}


def marked(method: str, value: Spread | None, best: Mapping[float, float], fraction: float) -> bool:
    """Whether a table marks `method`'s cell (`value`, None where it has none) at `fraction` as
    the best of its column (`best`: column_best)."""
    return value is not None and method not in CONTROLS and value.mean == best.get(fraction)


def w_sweep_table(study: optuna.Study, attr: str = "test_linear") -> str:
    """Rows per method, columns per label fraction; the best mean per column is starred (never
    a control's: column_best)."""
    table = method_table(study, complete_trials(study), attr)
    if not table:
        return f"(no complete trials with {attr} yet)"
    fractions, best = fractions_of(table), column_best(table)
    width, name_width = 22, max(16, *(len(method) + 1 for method in table))
    lines = [f"{'method':<{name_width}}" + "".join(f"{fraction_label(f):>{width}}" for f in fractions) + "   seeds"]
    for method, row in table.items():
        cells = "".join(
            f"{_starred(row[f], marked(method, row[f], best, f)):>{width}}" if f in row else f"{'-':>{width}}"
            for f in fractions
        )
        seeds = max(s.n for s in row.values())
        lines.append(f"{method:<{name_width}}{cells}   {seeds}")
    return "\n".join(lines)


def _starred(value: Spread, best: bool) -> str:
    return f"*{value}" if best else str(value)


def best_summary(study: optuna.Study) -> str:
    trials = complete_trials(study)
    if not trials:
        return "no trial has completed yet"
    best = max(trials, key=lambda t: t.value if t.value is not None else float("-inf"))
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
    lines = [f"best trial #{best.number}: validation linear-probe accuracy {best.value:.4f}", f"  params: {params}"]
    for attr, label in (("test_linear", "test linear probe"), ("test_finetune", "test fine-tune")):
        scores = trial_scores(best, attr)
        if scores:
            lines.append(f"  {label}: " + ", ".join(f"{fraction_label(f)} labels {a:.4f}" for f, a in scores.items()))
    return "\n".join(lines)


def counts(study: optuna.Study) -> str:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return ", ".join(f"{states.count(s)} {s.name.lower()}" for s in TrialState if states.count(s))


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
