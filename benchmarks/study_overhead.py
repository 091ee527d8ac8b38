"""Scheduling overhead of the study service: how much of the workers' time goes to trials.

Runs a smoke w-sweep through `studies/run.py` (local Ray, SQLite) with one trial per core and
compares the time the trials spent working with the capacity the run held:

    worker_utilisation = sum(trial wall time inside sidae.run) / (study wall time * slots)
    training_fraction  = sum(time in pre-training epochs)      / (study wall time * slots)
    compute_fraction   = sum(time in pre-training, probes (with their encoding) and
                             fine-tuning)                      / (study wall time * slots)

Everything else is overhead: Ray start-up, actor start, imports, data loading, storage writes.
Of it, what the command spends outside its trials is printed on its own: the seconds from its
start to the first trial (interpreter, imports, checks, Ray's start) and from the last trial's
end to its exit (summary, Ray's shut-down).
It also prints the trials' phase table (studies/analysis/phases.py: mean seconds per phase
and share of the trial time), as `sidae-report` shows it.
Target: worker_utilisation >= 0.8 for trials of about a minute.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import datetime
from pathlib import Path

import optuna
from common import timed_study
from optuna.trial import TrialState

from studies.analysis.phases import COMPUTE, phase_table, timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=6, help="epochs per trial (6 x 4096 images: about a minute)")
    p.add_argument("--train-limit", type=int, default=4096)
    p.add_argument("--slots", type=int, default=os.cpu_count() or 2, help="trials at once (1 CPU each)")
    p.add_argument("--seeds", default="0,1", help="seeds per w: 0,1 makes 6 trials, whole rounds of 2 slots")
    args, extra = p.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        began = datetime.now()  # Optuna stamps trials in local time, as this
        wall, url = timed_study(
            Path(tmp),
            "--study",
            "w-sweep",
            "--budget",
            "smoke",
            "--epochs",
            str(args.epochs),
            "--train-limit",
            str(args.train_limit),
            "--seeds",
            args.seeds,
            "--max-concurrent",
            str(args.slots),
            *extra,
        )
        trials = optuna.load_study(study_name="w-sweep-mnist", storage=url).get_trials(states=(TrialState.COMPLETE,))
    working = sum(t.user_attrs["wall_seconds"] for t in trials)
    training = sum(t.user_attrs["train_seconds_total"] for t in trials)
    computing = sum(phases.get(p, 0.0) for phases in timed(trials) for p in COMPUTE)
    print("\n".join(phase_table(trials)) + "\n")
    print(f"trials: {len(trials)}")
    print(f"slots: {args.slots}")
    print(f"study_wall_seconds: {wall:.1f}")
    print(f"mean_trial_seconds: {working / max(1, len(trials)):.1f}")
    print(f"worker_utilisation: {working / (wall * args.slots):.3f}")
    print(f"training_fraction: {training / (wall * args.slots):.3f}")
    print(f"compute_fraction: {computing / (wall * args.slots):.3f}")
    if trials:
        first = min(t.datetime_start for t in trials if t.datetime_start)
        last = max(t.datetime_complete for t in trials if t.datetime_complete)
        print(f"before_first_trial_seconds: {(first - began).total_seconds():.1f}")
        print(f"after_last_trial_seconds: {wall - (last - began).total_seconds():.1f}")


if __name__ == "__main__":
    main()
