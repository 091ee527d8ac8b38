"""What a study found, as text tables: the best configuration, and for w-sweeps the accuracy per
w at each label fraction (mean +- std over seeds), SimSiam (w = 1) and the DAE (w = 0) marked."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from studies.record import SUPERVISED_ATTR

SIMSIAM, DAE = 1.0, 0.0  # the w of the two methods SidAE interpolates
BASELINES = {SIMSIAM: "SimSiam", DAE: "DAE"}
SUPERVISED = "supervised"  # the backbone fine-tuned from scratch on the same labels (studies.service.baseline)


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f}" if self.n > 1 else f"{self.mean:.4f}"


def spread(values: list[float]) -> Spread:
    return Spread(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def method_name(w: float) -> str:
    return BASELINES.get(w, f"SidAE w={w:g}")


def by_w(trials: list[FrozenTrial], attr: str) -> dict[float, dict[str, Spread]]:
    """For each w, the spread over trials (seeds) of user attribute `attr` (a fraction -> accuracy map)."""
    values: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        for fraction, accuracy in (trial.user_attrs.get(attr) or {}).items():
            values[float(trial.params["w"])][fraction].append(float(accuracy))
    return {w: {f: spread(v) for f, v in sorted(per.items(), key=lambda kv: float(kv[0]))}
            for w, per in sorted(values.items())}


def method_table(study: optuna.Study, trials: list[FrozenTrial], attr: str) -> dict[str, dict[str, Spread]]:
    """Rows "DAE", "SidAE w=...", "SimSiam" (by w, from the study's complete `trials`) and, for
    fine-tuning, the supervised baseline; columns are label fractions; cells spread over seeds."""
    table = {method_name(w): row for w, row in by_w(trials, attr).items()}
    supervised = study.user_attrs.get(SUPERVISED_ATTR) or {}
    if attr == "test_finetune" and supervised:
        per_fraction: dict[str, list[float]] = defaultdict(list)
        for scores in supervised.values():
            for fraction, accuracy in scores.items():
                per_fraction[fraction].append(float(accuracy))
        table[SUPERVISED] = {f: spread(v) for f, v in sorted(per_fraction.items(), key=lambda kv: float(kv[0]))}
    return table


def w_sweep_table(study: optuna.Study, attr: str = "test_linear") -> str:
    """Rows per method, columns per label fraction; the best mean per column is starred."""
    table = method_table(study, complete_trials(study), attr)
    if not table:
        return f"(no complete trials with {attr} yet)"
    fractions = sorted({f for row in table.values() for f in row}, key=float)
    best = {f: max(row[f].mean for row in table.values() if f in row) for f in fractions}
    width = 22
    lines = [f"{'method':<16}" + "".join(f"{float(f):>{width}.0%}" for f in fractions) + "   seeds"]
    for method, row in table.items():
        cells = "".join(f"{_starred(row[f], best[f]):>{width}}" if f in row else f"{'-':>{width}}" for f in fractions)
        seeds = max(s.n for s in row.values())
        lines.append(f"{method:<16}{cells}   {seeds}")
    return "\n".join(lines)


def _starred(value: Spread, best: float) -> str:
    return f"*{value}" if value.mean == best else str(value)


def best_summary(study: optuna.Study) -> str:
    trials = complete_trials(study)
    if not trials:
        return "no trial has completed yet"
    best = max(trials, key=lambda t: t.value if t.value is not None else float("-inf"))
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
    lines = [f"best trial #{best.number}: validation linear-probe accuracy {best.value:.4f}", f"  params: {params}"]
    for attr, label in (("test_linear", "test linear probe"), ("test_finetune", "test fine-tune")):
        scores = best.user_attrs.get(attr) or {}
        if scores:
            lines.append(f"  {label}: " + ", ".join(f"{float(f):.0%} labels {a:.4f}" for f, a in
                                                   sorted(scores.items(), key=lambda kv: float(kv[0]))))
    return "\n".join(lines)


def counts(study: optuna.Study) -> str:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return ", ".join(f"{states.count(s)} {s.name.lower()}" for s in TrialState if states.count(s))


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
