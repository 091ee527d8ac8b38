"""Trials per hour of one fixed study on the loopback cluster (docker/local_cluster.py) with one
Ray worker node, then two, in the same run: `scaling_2_vs_1`, target >= 1.7.

Each worker node offers 1 CPU and the head none, so N nodes run N trials at once, one torch
thread each. The study: noise-sweep at w = 0.5, --trials 6, no early stopping, fixed epochs and
images, the sampler seeded: both runs train the same six configurations (TPE's first trials are
seeded random draws), which differ only in the noise applied, a negligible cost beside the
network's. Throughput is the cluster's: trials / (last trial's end - first trial's start), from
the Optuna timestamps in PostgreSQL, so the driver's start-up (Ray connect, data load) is left
out; the submit's end-to-end wall time and its ratio are printed too. Other work on the machine
slows the runs: the load average after each is printed.

Ray starts its worker processes at nice 15, so on a shared machine any ordinary (nice 0)
process takes a core from a trial: one node's single trial still finds a core, two nodes' trials
do not, and the ratio measures the neighbours instead of the cluster. The clusters here
therefore run their trials at nice 0 (RAY_worker_niceness=0; set it in the environment to
measure something else), which changes nothing on a machine of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from studies.cluster.state import storage_url

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "docker" / "local_cluster.py"


@dataclass(frozen=True)
class Run:
    trials: int
    span_s: float  # first trial's start to last trial's end
    wall_s: float  # the whole submit, driver start-up included
    trial_s: float  # mean trial duration

    @property
    def per_hour(self) -> float:
        return self.trials * 3600 / self.span_s


def cluster(state: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--state-dir", str(state), *args], cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"cluster_scaling: local_cluster.py {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def run_study(workers: int, study_args: list[str]) -> Run:
    """Up a cluster of `workers` nodes, submit the study, measure, down (whatever happened)."""
    state = Path(tempfile.mkdtemp(prefix="sidae-bench-"))  # under /tmp: `postgres` must enter it
    try:
        cluster(state, "up", "--workers", str(workers), "--cpus-per-worker", "1")
        url = storage_url(json.loads((state / "cluster.json").read_text()))
        start = time.perf_counter()
        cluster(state, "submit", *study_args)
        wall = time.perf_counter() - start
        trials = optuna.load_study(study_name="bench", storage=url).get_trials(states=(TrialState.COMPLETE,))
    finally:
        cluster(state, "down")
        shutil.rmtree(state, ignore_errors=True)
    span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    mean = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials) / len(trials)
    return Run(len(trials), span.total_seconds(), wall, mean)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=6, help="trials per run (even: both node counts finish together)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--train-limit", type=int, default=4096, help="pre-training images per trial")
    p.add_argument("--data-dir", default=os.environ.get("SIDAE_DATA_DIR"), help="default $SIDAE_DATA_DIR")
    args = p.parse_args()
    study = [
        "--study",
        "noise-sweep",
        "--budget",
        "smoke",
        "--set",
        "w=0.5",
        "--scheduler",
        "none",
        "--trials",
        str(args.trials),
        "--epochs",
        str(args.epochs),
        "--train-limit",
        str(args.train_limit),
        "--cpus-per-trial",
        "1",
        "--seed",
        "0",
        "--name",
        "bench",
        "--quiet",
        *(["--data-dir", args.data_dir] if args.data_dir else []),
    ]
    niceness = os.environ.setdefault("RAY_worker_niceness", "0")  # reaches the Ray nodes via local_cluster.py
    print(f"ray_worker_niceness: {niceness}")
    print(f"load_average_1min_start: {os.getloadavg()[0]:.2f}", flush=True)
    runs: dict[int, Run] = {}
    for workers in (1, 2):
        runs[workers] = run_study(workers, study)
        run = runs[workers]
        label = "1_node" if workers == 1 else f"{workers}_nodes"
        print(f"trials_{label}: {run.trials}")
        print(f"mean_trial_seconds_{label}: {run.trial_s:.1f}")
        print(f"study_wall_seconds_{label}: {run.wall_s:.1f}")
        print(f"trials_per_hour_{label}: {run.per_hour:.1f}")
        # A run keeps `workers` cores busy; a load well above that means others' work competed.
        print(f"load_average_1min_after_{label}: {os.getloadavg()[0]:.2f}", flush=True)
    print(f"scaling_2_vs_1: {runs[2].per_hour / runs[1].per_hour:.2f}")
    print(f"scaling_2_vs_1_end_to_end: {runs[1].wall_s / runs[2].wall_s:.2f}")


if __name__ == "__main__":
    main()
