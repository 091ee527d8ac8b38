"""How close the expected time a study prints is to what its trials took: each kind of trial
(DAE, SidAE, SimSiam) timed as the driver times it before a run (studies.service.estimate),
against the mean `wall_seconds` of the stored study's complete trials of that kind.

    .venv/bin/python benchmarks/expected_time.py --study w-sweep --dataset cifar10-jpeg \\
        --data-dir ../shared/data --storage sqlite:///studies.db

Prints `<kind>_expected_seconds`, `<kind>_measured_seconds` (and how many trials) and
`<kind>_ratio` (expected / measured) for each kind the study has; a confirmatory w-sweep's
kinds are named per stage (`pilot_dae_...`, `confirmation_dae_...`): its pilot trials do not
fine-tune (studies run before that change did). Run it on the machine and with the cores as idle
as the study had them: a busy machine times its steps slowly.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

import optuna

from studies.service.catalogue import grid_points
from studies.service.estimate import cost_kind, time_trials
from studies.service.options import StudyOptions, design_for, validate

KINDS = {0.0: "dae", 0.5: "sidae", 1.0: "simsiam"}


def measured_walls(study: optuna.Study, pilot_seeds: tuple[int, ...] | None) -> dict[tuple[str, float], list[float]]:
    """The complete trials' wall seconds by (stage, cost kind); the stage ("pilot_" or
    "confirmation_") only when `pilot_seeds` names a confirmatory design's, else ""."""
    walls: dict[tuple[str, float], list[float]] = defaultdict(list)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        w = trial.params.get("w", trial.user_attrs.get("w"))
        if w is None or "wall_seconds" not in trial.user_attrs:
            continue
        pilot = pilot_seeds is not None and trial.params.get("seed") in pilot_seeds
        stage = "" if pilot_seeds is None else "pilot_" if pilot else "confirmation_"
        walls[stage, cost_kind(float(w))].append(float(trial.user_attrs["wall_seconds"]))
    return walls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="w-sweep")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--budget", default="cpu")
    p.add_argument("--data-dir")
    p.add_argument("--storage", required=True, help="the study's storage URL")
    p.add_argument("--name", help="the study's name (default <study>-<dataset>)")
    args = p.parse_args()
    opts = StudyOptions(
        study=args.study, dataset=args.dataset, budget=args.budget, data_dir=args.data_dir, name=args.name
    )
    study, budget, ctx, data = validate(opts)
    points = grid_points(study, budget) if study.grid is not None else []
    design = design_for(opts, budget)
    expected = time_trials(ctx, data, points, list(KINDS), design.confirm_seeds[0] if design is not None else None)
    confirmation = expected.confirmation
    stages = {"": expected} if confirmation is None else {"pilot_": expected, "confirmation_": confirmation}
    stored = optuna.load_study(study_name=opts.study_name, storage=args.storage)
    walls = measured_walls(stored, ctx.pilot_seeds if confirmation is not None else None)
    for (stage, kind), kind_walls in sorted(walls.items()):
        name, seconds, measured = stage + KINDS[kind], stages[stage].trial[kind], statistics.fmean(kind_walls)
        print(f"{name}_expected_seconds: {seconds:.1f}")
        print(f"{name}_measured_seconds: {measured:.1f} (mean of {len(kind_walls)} trials)")
        print(f"{name}_ratio: {seconds / measured:.3f}")
    for stage, stage_expected in stages.items():
        print(f"{stage}seed_task_expected_seconds: {stage_expected.seed_task:.1f}")


if __name__ == "__main__":
    main()
