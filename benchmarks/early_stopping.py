"""Does early stopping pay? The same w-sweep grid with ASHA and without it.

A grid study runs the same configurations in both runs, so the comparison is only about the
scheduler: for each run, the epochs spent (summed over trials), the trials pruned, the wall
time and the best validation objective found. Fine-tuning is off to keep the run short (the
objective is the validation linear probe either way).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import optuna
from common import timed_study


def run(folder: Path, scheduler: str, args: argparse.Namespace) -> dict[str, float]:
    wall, url = timed_study(
        folder / scheduler,
        "--study",
        "w-sweep",
        "--budget",
        "cpu",
        "--epochs",
        str(args.epochs),
        "--train-limit",
        str(args.train_limit),
        "--set",
        "eval.finetune=False",
        "--scheduler",
        scheduler,
        "--max-concurrent",
        str(args.concurrent),
    )
    trials = optuna.load_study(study_name="w-sweep-mnist", storage=url).trials
    complete = [t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "wall": wall,
        "best": max(complete, default=float("nan")),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=9, help="ASHA rungs at epochs 1 and 3 of 9")
    p.add_argument("--train-limit", type=int, default=2048)
    p.add_argument("--concurrent", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {scheduler: run(Path(tmp), scheduler, args) for scheduler in ("asha", "none")}
    for scheduler, r in results.items():
        print(f"{scheduler}_epochs_spent: {r['epochs']:.0f}")
        print(f"{scheduler}_pruned_trials: {r['pruned']:.0f}")
        print(f"{scheduler}_wall_seconds: {r['wall']:.1f}")
        print(f"{scheduler}_best_objective: {r['best']:.4f}")
    print(f"epochs_saved_fraction: {1 - results['asha']['epochs'] / results['none']['epochs']:.3f}")


if __name__ == "__main__":
    main()
