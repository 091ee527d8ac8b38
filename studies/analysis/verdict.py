"""The verdict as people read it: the report's and the note's markdown section, and the
terminal's lines. The numbers come from studies/analysis/claim.py; the design's error rate and
power from studies/analysis/simulate.py."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import optuna

from studies.analysis.claim import (
    NO_LEARNING,
    PRIMARY_ATTR,
    VOID,
    ClaimRow,
    Design,
    Learning,
    PrimaryVerdict,
    by_w_and_seed,
    claim_rows,
    learning,
    over_control,
    study_verdict,
)
from studies.analysis.controls import control_scores
from studies.analysis.sequential import OPEN
from studies.analysis.simulate import DESIGN_EFFECT, Plan, operating_characteristics
from studies.analysis.summary import DAE, SIMSIAM, complete_trials, fraction_label, method_name


@functools.cache
def _characteristics(plan: Plan) -> dict[str, float]:
    return operating_characteristics(plan)


def characteristics(design: Design) -> dict[str, float]:
    """The design's simulated error rates and power (cached: a few tenths of a second each)."""
    inner = sum(DAE < w < SIMSIAM for w in design.w_grid)
    return _characteristics(Plan(len(design.pilot_seeds), max(inner, 1), design.looks, design.alpha))


def design_text(design: Design) -> str:
    oc = characteristics(design)
    return (
        f"{design.describe()}. Simulated over 20,000 studies, w selection included "
        f'(studies/analysis/simulate.py): a false "holds" {oc["false_holds"]:.3f} of the time (the least '
        f'favourable case: SidAE level with SimSiam, the DAE far behind), a false "reversed" '
        f"{oc['false_reversed']:.3f} (no difference at all); power {oc['power']:.2f} at a standardised effect of "
        f"{DESIGN_EFFECT:g} (mean / sd of the per-seed differences) at every inner w, {oc['power_one_w']:.2f} at "
        f"the best w only, using {oc['mean_seeds']:.1f} fresh seeds on average"
    )


def _gate_rows(
    study: optuna.Study, gate: list[Learning], ws: Sequence[float], fraction: float, seeds: Sequence[int]
) -> list[str]:
    """The learning gate's table, with each method's margin over raw pixels beside it: the gate
    does not act on that margin, but a reader should see whether a linear model on the pixels
    does as well (docs/verdict.md)."""
    table = by_w_and_seed(complete_trials(study))
    pixels = control_scores(study, "pixels")
    over_pixels = {method_name(w): over_control(table, pixels, w, fraction, seeds) for w in ws}
    label = fraction_label(fraction)
    return [
        f"| method | − untrained encoder, test linear probe {label} (95 % interval) | learned "
        "| − raw pixels (descriptive) |",
        "|---|---:|---|---:|",
        *(
            f"| {g.method} | {g.difference} | {'yes' if g.learned else '**no**'} | {over_pixels.get(g.method) or '-'} |"
            for g in gate
        ),
    ]


def _descriptive_table(rows: list[ClaimRow], w: float) -> list[str]:
    sidae, dae, simsiam = (method_name(x) for x in (w, DAE, SIMSIAM))
    return [
        f"| evaluation | {sidae} − {dae} | {sidae} − {simsiam} | {simsiam} − {dae} |",
        "|---|---:|---:|---:|",
        *(
            f"| {r.evaluation}, {fraction_label(r.fraction)} labels | {r.vs_dae} | {r.vs_simsiam} | {r.siamese} |"
            for r in rows
        ),
    ]


def _primary_lines(verdict: PrimaryVerdict) -> list[str]:
    design = verdict.design
    lines = [f"**Primary verdict: {verdict.word.upper()}**" + (f" ({NO_LEARNING})." if verdict.word == VOID else ".")]
    if verdict.tested == OPEN:
        lines[0] = f"**Primary verdict: open** after {verdict.vs_dae.n} of {design.looks[-1]} fresh seeds."
    interval = "interval" if len(design.looks) == 1 else "repeated confidence interval"
    lines += [
        "",
        f"SidAE at w = {verdict.w:g} minus each baseline, test linear probe at "
        f"{fraction_label(design.primary_fraction)} labels, points, on {verdict.vs_dae.n} fresh seeds: the mean, its "
        f"{100 * (1 - 2 * design.alpha):g} % {interval} (above 0 exactly when the one-sided test says SidAE is "
        "ahead), t, and the t the look needed.",
        "",
        "| baseline | SidAE − baseline | t | needed (ahead / behind) |",
        "|---|---|---:|---:|",
    ]
    for name, test in (("DAE", verdict.vs_dae), ("SimSiam", verdict.vs_simsiam)):
        low, high = test.interval()
        lines.append(
            f"| {name} | {test.mean:+.2f} [{low:+.2f}, {high:+.2f}] | {test.t:.2f} | "
            f"{test.ahead_at:.2f} / {-test.behind_at:.2f} |"
        )
    return lines


def verdict_section(study: optuna.Study, evaluations: Mapping[str, str]) -> list[str]:
    """The report's and the note's section: the design, the chosen w, the primary verdict, the
    learning gate and the descriptive rows (empty when nothing can be compared yet)."""
    design, w, verdict = study_verdict(study)
    trials = complete_trials(study)
    if design is None:
        return _descriptive_section(study, evaluations, w)
    lines = ["### Does the claim hold?", "", f"**Design**, declared before the run: {design_text(design)}.", ""]
    if w is None:
        return lines + ["The pilot is not complete: no w is chosen yet.", ""]
    lines += [f"**Chosen w**: {w:g}, the best mean validation objective on the pilot seeds.", ""]
    if verdict is None:
        return lines + ["The first look's trials are not complete yet: no verdict.", ""]
    lines += _primary_lines(verdict) + [""]
    seeds = verdict.design.confirm_seeds[: verdict.vs_dae.n]
    lines += ["#### Did pre-training learn?", ""]
    if verdict.gate:
        lines += [*_gate_rows(study, verdict.gate, (w, DAE, SIMSIAM), design.primary_fraction, seeds), ""]
    else:
        lines += ["The untrained-encoder control is missing for some seed: the learning gate is unchecked.", ""]
    rows = claim_rows(trials, evaluations, w, seeds)
    lines += [
        "#### Descriptive comparisons",
        "",
        f"The same {len(seeds)} fresh seeds, every evaluation and label fraction: mean difference in points "
        "[95 % t interval] (n seeds); no correction for the many rows, so not claims.",
        "",
        *_descriptive_table(rows, w),
        "",
    ]
    return lines


def _descriptive_section(study: optuna.Study, evaluations: Mapping[str, str], w: float | None) -> list[str]:
    rows = claim_rows(complete_trials(study), evaluations, w)
    if w is None or not rows:
        return []
    lines = [
        "### Comparisons (descriptive)",
        "",
        f"This sweep named its own points (--w-grid, --seeds): it makes no confirmatory claim. SidAE at w = {w:g}, "
        "the inner w with the best mean validation objective on the same seeds (so its margins below are "
        "optimistic), against each baseline: mean difference in points [95 % t interval] (n seeds).",
        "",
        *_descriptive_table(rows, w),
        "",
    ]
    gate, fraction, seeds = _learning_all_seeds(study, w)
    if gate:
        lines += ["#### Did pre-training learn?", "", *_gate_rows(study, gate, (w, DAE, SIMSIAM), fraction, seeds), ""]
        if not any(g.learned for g in gate):
            lines += [f"**{NO_LEARNING[0].upper()}{NO_LEARNING[1:]}.**", ""]
    return lines


def _learning_all_seeds(study: optuna.Study, w: float) -> tuple[list[Learning], float, list[int]]:
    """A descriptive sweep's gate on every seed at its smallest label fraction, with that
    fraction and the seeds."""
    table = by_w_and_seed(complete_trials(study))
    untrained = control_scores(study, "untrained")
    fractions = sorted({f for per in untrained.values() for f in per})
    seeds = sorted({s for runs in table.values() for s in runs})
    if not fractions:
        return [], 0.0, seeds
    return learning(table, untrained, (w, DAE, SIMSIAM), fractions[0], seeds), fractions[0], seeds


def verdict_lines(study: optuna.Study) -> list[str]:
    """The terminal's lines: the primary verdict with its design's error rate and power, or
    what a descriptive sweep shows."""
    design, w, verdict = study_verdict(study)
    if design is not None:
        if verdict is None:
            return ["primary verdict: not reached yet (the pilot or the first look is not complete)"]
        oc = characteristics(design)
        lines = [
            verdict.summary(),
            f"design: {len(design.pilot_seeds)} pilot seeds, looks at {', '.join(map(str, design.looks))} fresh "
            f"seeds; false holds <= {design.alpha:g} (simulated {oc['false_holds']:.3f}), power {oc['power']:.2f} "
            f"at a standardised effect of {DESIGN_EFFECT:g} (studies/report.py for the rest)",
        ]
        return lines + _learning_line(verdict.gate, design.primary_fraction)
    rows = claim_rows(complete_trials(study), {PRIMARY_ATTR: "linear probe"}, w)
    if w is None or not rows:
        return []
    first = rows[0]
    return [
        f"descriptive sweep (points named by --w-grid/--seeds): no confirmatory verdict; SidAE at w={w:g} "
        f"(chosen on validation of the same seeds) at {fraction_label(first.fraction)} labels, test linear probe: "
        f"− DAE {first.vs_dae}, − SimSiam {first.vs_simsiam} (points, 95 % intervals)",
        *_learning_line(_learning_all_seeds(study, w)[0], first.fraction),
    ]


def _learning_line(gate: list[Learning], fraction: float) -> list[str]:
    if not gate:
        return []
    cells = ", ".join(f"{g.method} {g.difference}{'' if g.learned else ' (did not learn)'}" for g in gate)
    line = f"over the untrained encoder, test linear probe at {fraction_label(fraction)} labels: {cells}"
    return [line] + ([NO_LEARNING] if not any(g.learned for g in gate) else [])
