"""How close the expected time a study prints is to what its trials took: each kind of trial
(DAE, SidAE, SimSiam) timed as the driver times it before a run (studies.service.estimate),
against the mean `wall_seconds` of the stored study's complete trials of that kind.

    .venv/bin/python benchmarks/expected_time.py --study w-sweep --dataset cifar10-jpeg \\
        --data-dir ../shared/data --storage sqlite:///studies.db

Prints `<kind>_expected_seconds`, `<kind>_measured_seconds` (and how many trials) and
`<kind>_ratio` (expected / measured) for each kind the study has. Run it on the machine and
with the cores as idle as the study had them: a busy machine times its steps slowly.
"""

from __future__ import annotations

import argparse
import statistics

import optuna

from studies.service.catalogue import grid_points
from studies.service.estimate import cost_kind, time_trials
from studies.service.options import StudyOptions, validate

KINDS = {0.0: "dae", 0.5: "sidae", 1.0: "simsiam"}


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
    expected = time_trials(ctx, data, points, list(KINDS))
    stored = optuna.load_study(study_name=opts.study_name, storage=args.storage)
    walls: dict[float, list[float]] = {kind: [] for kind in KINDS}
    for trial in stored.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        w = trial.params.get("w", trial.user_attrs.get("w"))
        if w is not None and "wall_seconds" in trial.user_attrs:
            walls[cost_kind(float(w))].append(float(trial.user_attrs["wall_seconds"]))
    for kind, name in KINDS.items():
        if not walls[kind]:
            continue
        measured = statistics.fmean(walls[kind])
        print(f"{name}_expected_seconds: {expected.trial[kind]:.1f}")
        print(f"{name}_measured_seconds: {measured:.1f} (mean of {len(walls[kind])} trials)")
        print(f"{name}_ratio: {expected.trial[kind] / measured:.3f}")
    print(f"seed_task_expected_seconds: {expected.seed_task:.1f}")


if __name__ == "__main__":
    main()
