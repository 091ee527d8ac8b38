"""The adaptive w-sweep's plan (studies/analysis/adaptive.py): after the first round, seeds go
only to the chosen w and the baselines it is not yet decided against, until decided or the seed
budget is spent; the plan is a function of the stored trials alone (resume replans the same)."""

from __future__ import annotations

import random

import optuna
from optuna.trial import FrozenTrial

from studies.analysis.adaptive import decision_lines, plan
from studies.analysis.summary import complete_trials
from studies.service.budgets import BUDGETS
from studies.service.catalogue import STUDIES
from studies.service.notes import study_note
from tests.multiseed_study import SEEDS, WS, distributions, write_study

EVALUATIONS = {"test_linear": "linear probe"}
BUDGET = tuple(range(10))
MEAN = {0.0: 0.80, 0.5: 0.82, 0.9: 0.86, 1.0: 0.858}  # w = 0.9: far ahead of the DAE, level with SimSiam
VALIDATION = {0.0: 0.7, 0.5: 0.75, 0.9: 0.8, 1.0: 0.7}


def trial(w: float, seed: int) -> FrozenTrial:
    """A seed moves every w alike (shared labels and probes: paired), plus a little noise per run."""
    shared, own = random.Random(seed).gauss(0, 0.02), random.Random(f"{seed}-{w}").gauss(0, 0.003)
    return optuna.trial.create_trial(
        params={"seed": seed, "w": w},
        distributions=distributions(),
        value=VALIDATION[w] + own,
        user_attrs={"test_linear": {"0.01": MEAN[w] + shared + own}},
    )


def test_a_first_round_plans_one_more_seed_where_open(tmp_path) -> None:
    study = write_study(f"sqlite:///{tmp_path / 'studies.db'}", "w-sweep-mnist")
    p = plan(complete_trials(study), {"test_linear": "linear probe", "test_finetune": "fine-tune"}, WS, BUDGET)
    assert p.w == 0.9 and len(p.comparisons) == 8 and len(p.open) == 8  # 3 seeds never decide at this split
    assert p.next_points == [(3, 0.9), (3, 0.0), (3, 1.0)]  # not w = 0.5: it decides nothing
    assert (p.trials_done, p.full_budget) == (12, 40)
    assert p.summary().endswith("12 trials of the 40 a full-budget run would take")


def test_seeds_go_where_the_verdict_is_open_until_decided_or_spent() -> None:
    trials = [trial(w, s) for s in SEEDS for w in WS]  # the first round
    history = []
    while not (p := plan(trials, EVALUATIONS, WS, BUDGET)).finished:
        history.append(p)
        trials += [trial(w, s) for s, w in p.next_points]
        again = plan(list(reversed(trials)), EVALUATIONS, WS, BUDGET)  # replanned from the stored trials alone
        assert again.next_points == plan(trials, EVALUATIONS, WS, BUDGET).next_points
    seeds = {w: sorted(int(t.params["seed"]) for t in trials if t.params["w"] == w) for w in WS}
    vs_dae, vs_simsiam = p.comparisons
    assert vs_dae.decision.state == "ahead" and vs_dae.decision.low > 0
    assert vs_simsiam.decision.state == "open" and vs_simsiam.decision.n == len(BUDGET)  # budget spent
    assert seeds[0.9] == seeds[1.0] == list(BUDGET)
    assert seeds[0.0] == list(range(vs_dae.decision.n)) and vs_dae.decision.n < len(BUDGET)  # stopped once decided
    assert seeds[0.5] == list(SEEDS)  # never extended: it decides nothing
    assert p.trials_done == len(trials) < p.full_budget == 40
    assert all(len(h.next_points) <= 3 for h in history)  # one seed at a time
    assert "linear probe 1% vs DAE: ahead, [+" in p.summary()


def test_the_report_section_says_decided_or_open_and_trials_against_the_full_budget() -> None:
    trials = [trial(w, s) for s in SEEDS for w in WS]
    while not (p := plan(trials, EVALUATIONS, WS, BUDGET)).finished:
        trials += [trial(w, s) for s, w in p.next_points]
    lines = decision_lines(trials, EVALUATIONS, WS, BUDGET)
    vs_dae, vs_simsiam = (c.decision for c in p.comparisons)
    assert (
        f"| linear probe, 1% labels | ahead, {vs_dae.interval()} after 4 seeds | open after 10 seeds, "
        f"{vs_simsiam.interval()} |" in lines
    )
    assert "Trials: 27 of the 40 that 10 seeds at every w would take (13 not run; finished)." in lines
    assert "at error 0.0125 per comparison, 0.05 for all of them together" in lines[2]  # 0.05 / (2 baselines x 2 w)


def test_the_note_of_an_adaptive_sweep_names_its_seed_budget() -> None:
    fixed = study_note(STUDIES["w-sweep"], BUDGETS["cpu"], "fashion-mnist", 0.01, "")
    adaptive = study_note(STUDIES["w-sweep"], BUDGETS["cpu"], "fashion-mnist", 0.01, "", seed_budget=6)
    assert "grid of 18 points" in fixed and "--until-decided" not in fixed
    assert "grid of 18 points" in adaptive and "then more seeds, up to 6, only at the w values" in adaptive
