"""A round's seed tasks (studies.service.baseline.SeedTasks: each seed's supervised baseline and
controls) are stored as each ends, not after the round's last trial: a driver stopped mid-round
keeps the seeds already computed. Real Ray (local, in this process), real Optuna study; the
tasks return at once, fail, or outlast the round."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
import ray

from studies.record import CONTROLS_ATTR
from studies.service.baseline import SeedTasks

RESULT = {CONTROLS_ATTR: {"untrained": {"0.01": 0.5}, "pixels": {"0.01": 0.4}}}


@ray.remote
def seed_task(outcome: str) -> dict[str, Any]:
    if outcome == "fails":
        raise RuntimeError("out of memory")
    if outcome == "outlasts the round":
        time.sleep(600)
    return RESULT


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """This module's own Ray, with three CPUs: the one an in-process study of this pytest worker
    left running (tests/smoke_study.py:main_in_process) is shut down first, and started again by
    the next such study."""
    ray.shutdown()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")  # as main_in_process's Ray: Ray is imported already
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_each_seed_is_stored_when_its_task_ends(local_ray: None, caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(direction="maximize")
    outcomes = {"0": "returns", "1": "fails", "2": "outlasts the round"}
    tasks = SeedTasks(study, {seed: seed_task.remote(outcome) for seed, outcome in outcomes.items()})
    ray.wait([seed_task.remote("returns")], timeout=60)  # the pool is up
    deadline = time.monotonic() + 60
    while tasks.done < 2 and time.monotonic() < deadline:
        tasks.store_finished()  # as Tune's loop calls it between trials
        time.sleep(0.2)
    assert (tasks.done, tasks.total) == (2, 3)
    assert study.user_attrs[CONTROLS_ATTR] == {"0": RESULT[CONTROLS_ATTR]}  # stored while seed 2 still runs
    assert "seed 1 failed" in caplog.text and "computed at the next start" in caplog.text

    tasks.finish(wait=False)  # the time budget is spent: seed 2 is cancelled, seed 0 stays
    assert "seed 2: cut by the time budget" in caplog.text
    assert study.user_attrs[CONTROLS_ATTR] == {"0": RESULT[CONTROLS_ATTR]}
