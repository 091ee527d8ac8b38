"""What a trial and a seed's task ran on: the resources a seed's task asks for (only the
supervised baseline takes a GPU share; the controls alone run on the CPU), and the report's
lines saying where every trial and task ran. (tests/test_cluster_gpus.py checks the stored
`gpu_ids` against real Ray processes.)"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from sidae.config import default_config
from studies.analysis.phases import phase_section, placement_lines
from studies.service.baseline import SeedWork, task_resources

CFG = default_config("mnist")  # device "auto"


def test_only_a_task_with_the_supervised_baseline_takes_a_gpu_share() -> None:
    both = SeedWork(CFG, supervised=True, controls=True)
    assert task_resources(both, 2.0, 0.5) == (2.0, 0.5, both)
    cpus, gpus, work = task_resources(SeedWork(CFG, supervised=False, controls=True), 2.0, 0.5)
    assert (cpus, gpus, work.cfg.device) == (2.0, 0.0, "cpu")  # not `auto`: it would find the node's GPU
    assert work.cfg.model == CFG.model  # the same untrained encoder as the trials'
    plain = SeedWork(CFG, supervised=False, controls=True)
    assert task_resources(plain, 1.0, 0.0) == (1.0, 0.0, plain)  # no GPUs anywhere: as the trials


def add_trial(study: optuna.Study, **attrs: object) -> None:
    trial = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=0.5,
        params={"w": 0.5},
        distributions={"w": optuna.distributions.FloatDistribution(0, 1)},
        user_attrs={"phase_seconds": {"pretrain": 1.0}, **attrs},
    )
    study.add_trial(trial)


def test_the_phase_section_says_where_each_trial_and_seed_task_ran(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'devices.db'}")
    for gpu in ("0", "0", "1"):
        add_trial(study, device="cpu", ray_node_id=f"node{gpu}abcdefgh", gpu_ids=[gpu])
    add_trial(study, device="cuda:0", ray_node_id="node2abcdefgh", gpu_ids=[])
    add_trial(study, device="cpu", ray_node_id="old")  # stored before gpu_ids were
    tasks = {"0": {"device": "cpu", "ray_node_id": "node1abcdefgh", "gpu_ids": [], "node": "h"}}
    lines = placement_lines(study.trials, tasks)
    assert lines[2:] == [
        "- cpu on node node0abc, GPU 0: 2 trial(s)",
        "- cpu on node node1abc, GPU 1: 1 trial(s)",
        "- cpu on node old, GPU ids not recorded: 1 trial(s)",
        "- cuda:0 on node node2abc, no GPU: 1 trial(s)",
        "- cpu on node node1abc, no GPU: seed 0's baseline and controls",
    ]
    section = phase_section(study.trials)
    assert "- cpu on node node0abc, GPU 0: 2 trial(s)" in section
    assert placement_lines([], None) == []
