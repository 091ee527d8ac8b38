"""The examples in the public API's docstrings run, and show what they say."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import sidae.config

DOCUMENTED = [sidae.config]


@pytest.mark.parametrize("module", DOCUMENTED, ids=lambda module: module.__name__)
def test_docstring_examples_run(module: ModuleType) -> None:
    failed, tried = doctest.testmod(module, verbose=False, report=True)
    assert tried > 0 and failed == 0
