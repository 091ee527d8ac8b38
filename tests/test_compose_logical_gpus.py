"""The compose CPU override with logical GPUs: LOGICAL_GPUS=N reaches every ray-cpu-worker, and
docker/ray-worker.sh then starts a node that declares N GPUs (`ray start --num-gpus N`, devices
0..N-1) without reserving any device; unset, the CPU worker is as before. (The scheduling on
declared GPUs is proven on real Ray processes by tests/test_cluster_gpus.py.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.test_compose import COMPOSE, CPU_OVERRIDE, DOCKER, SECRETS, compose, stop, stub


def cpu_worker(env_file: Path) -> dict:
    done = compose("config", secrets=SECRETS, env_file=env_file, files=(COMPOSE, CPU_OVERRIDE))
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]["ray-cpu-worker"]


def test_the_cpu_override_passes_logical_gpus_to_its_workers(tmp_path: Path) -> None:
    declared, plain = tmp_path / "declared.env", tmp_path / "plain.env"
    declared.write_text("LOGICAL_GPUS=1\n")
    plain.write_text("")
    worker = cpu_worker(declared)
    assert worker["environment"]["LOGICAL_GPUS"] == "1" and worker["environment"]["GPUS_PER_WORKER"] == "0"
    assert "deploy" not in worker  # no device reservation: the host needs no GPU
    assert cpu_worker(plain)["environment"]["LOGICAL_GPUS"] == "0"


def test_a_cpu_worker_declares_its_logical_gpus(tmp_path: Path) -> None:
    stub(tmp_path, "ray", 'echo "ray $* devices=$CUDA_VISIBLE_DEVICES"; exec sleep 120')
    stub(tmp_path, "python", "echo 0")  # torch.cuda.device_count(): must not be asked
    env = {
        **os.environ,
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "GPUS_PER_WORKER": "0",
        "LOGICAL_GPUS": "2",
        "RAY_HEAD_ADDRESS": "ray-head:6379",
        "GPU_SLOT_DIR": str(tmp_path / "no-slots"),  # no slot is claimed
    }
    script = str(DOCKER / "ray-worker.sh")
    node = subprocess.Popen(["sh", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "2 logical GPU(s) declared" in node.stdout.readline()
        line = node.stdout.readline()
        assert "--address ray-head:6379 --num-gpus 2 " in line and line.strip().endswith("devices=0,1")
    finally:
        stop(node)
    for bad, message in (
        (dict(LOGICAL_GPUS="x"), "LOGICAL_GPUS must be a whole number"),
        (dict(GPUS_PER_WORKER="1", LOGICAL_GPUS="1"), "LOGICAL_GPUS is for a worker without GPUs"),
    ):
        wrong = subprocess.run(["sh", script], env={**env, **bad}, capture_output=True, text=True, timeout=30)
        assert wrong.returncode == 2 and message in wrong.stderr
