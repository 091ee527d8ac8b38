"""The examples in the public API's docstrings run, and show what they say."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import sidae.config
import sidae.experiment
import sidae.pretraining
import studies.cli.dashboard
import studies.cli.report
import studies.cli.run

DOCUMENTED = [
    sidae.config,
    sidae.experiment,
    sidae.pretraining,
    studies.cli.run,  # the commands' main functions: what they return for what input
    studies.cli.report,
    studies.cli.dashboard,
]
# Their examples train on real MNIST, found where a user's run finds it: $SIDAE_DATA_DIR.
READS_MNIST = {sidae.experiment, sidae.pretraining}
# run's example pre-trains and probes: about 30 s on 2 cores, an end-to-end test by pyproject.toml's measure.
SLOW = {sidae.experiment}


@pytest.mark.parametrize(
    "module",
    [pytest.param(module, marks=pytest.mark.slow) if module in SLOW else module for module in DOCUMENTED],
    ids=lambda module: module.__name__,
)
def test_docstring_examples_run(
    module: ModuleType, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if module in READS_MNIST:
        monkeypatch.setenv("SIDAE_DATA_DIR", str(request.getfixturevalue("mnist_dir")))
    failed, tried = doctest.testmod(module, verbose=False, report=True)
    assert tried > 0 and failed == 0
