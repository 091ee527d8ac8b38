"""Logical GPUs on the loopback cluster: `up --gpus-per-worker 1` declares a GPU on each of two
worker nodes (`ray start --num-gpus 1`, the node's CUDA_VISIBLE_DEVICES naming its own device)
on a machine that has none. Ray places and isolates tasks on them as on real ones, so the GPU
scheduling path is tested here: a smoke w-sweep at --gpus-per-trial 0.5 packs two trials per
GPU and never more, each trial holds its own node's GPU id, the seed's controls task (CPU-only)
takes a CPU and no GPU share, and every trial ends COMPLETE on the CPU (`--device auto`: torch
sees no CUDA device)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from studies.cluster.state import Paths, ray_address, ray_env, storage_env, storage_url
from studies.record import SEED_TASKS_ATTR
from tests.smoke_study import QUICK
from tests.test_cluster import cluster, state_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

# Ray node id -> the worker's temp folder name (w1, w2): its sockets live under it.
_NODES_SNIPPET = """
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
print(json.dumps({n["NodeID"]: n["RayletSocketName"] for n in ray.nodes() if n["Alive"]}))
"""


def worker_of_node(state: Path, record: dict) -> dict[str, int]:
    """Ray node id -> worker index (0, 1, ...), from the temp folder each node's sockets are in."""
    done = subprocess.run(
        [sys.executable, "-c", _NODES_SNIPPET, ray_address(record)],
        env=ray_env(Paths(state)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sockets = json.loads(done.stdout.strip().splitlines()[-1])
    workers = {}
    for node, socket in sockets.items():
        folder = Path(socket).relative_to(Paths(state).ray_temp).parts[0]  # head, w1, w2
        if folder.startswith("w"):
            workers[node] = int(folder[1:]) - 1
    return workers


def running_span(trial: FrozenTrial) -> tuple[float, float]:
    """(start, end) of the trial's run in its Ray worker, from Tune's result rows: the first
    report's timestamp less the time it had run, and the last report's timestamp."""
    rows = [
        json.loads(line) for line in (Path(trial.user_attrs["ray_logdir"]) / "result.json").read_text().splitlines()
    ]
    return rows[0]["timestamp"] - rows[0]["time_total_s"], rows[-1]["timestamp"]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans that overlap at one moment (touching ends do not overlap)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_two_trials_per_logical_gpu_each_with_its_own_nodes_id(
    state_dir: Path,  # noqa: F811
    mnist_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2 CPUs per node so that CPUs never bind: 4 trials at 0.5 CPU and 0.5 GPU and the controls
    # task at 0.5 CPU fit at once, so only the GPUs limit how the trials pack.
    started = cluster(state_dir, "up", "--workers", "2", "--cpus-per-worker", "2", "--gpus-per-worker", "1")
    assert started.returncode == 0, started.stderr
    assert "2 CPU and 1 GPU each" in started.stdout
    record = json.loads((state_dir / "cluster.json").read_text())
    workers = worker_of_node(state_dir, record)
    assert sorted(workers.values()) == [0, 1]

    url = storage_url(record)
    submitted = cluster(
        state_dir,
        "submit",
        "--study",
        "w-sweep",
        *QUICK,
        *("--w-grid", "0,0.25,0.75,1", "--name", "gpu-packing", "--data-dir", str(mnist_dir)),
        *("--cpus-per-trial", "0.5", "--gpus-per-trial", "0.5", "--device", "auto"),
        timeout=900,
    )
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    for name, value in storage_env(Paths(state_dir)).items():  # PGPASSFILE, for this process's reads
        monkeypatch.setenv(name, value)
    study = optuna.load_study(study_name="gpu-packing", storage=url)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert {t.user_attrs["device"] for t in trials} == {"cpu"}  # no CUDA here: `auto` fell back

    # Each trial holds one GPU id, its own node's (worker i owns device i).
    for t in trials:
        assert t.user_attrs["gpu_ids"] == [str(workers[t.user_attrs["ray_node_id"]])], t.user_attrs
    # Two per GPU at once, never more: packed, and held to the declared half GPU each.
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t in trials:
        spans[t.user_attrs["gpu_ids"][0]].append(running_span(t))
    assert max(most_at_once(s) for s in spans.values()) == 2, spans

    # The seed's controls task: on a worker node, with a CPU and no GPU share, on the CPU.
    (task,) = study.user_attrs[SEED_TASKS_ATTR].values()
    assert task["ray_node_id"] in workers and task["gpu_ids"] == [] and task["device"] == "cpu"
