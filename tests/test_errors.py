"""One base class for every error a user can act on, caught once by each command."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from sidae.config_checks import ConfigError
from sidae.errors import UserError, print_warnings
from sidae.image_set import DataError
from sidae.pretraining import TrainingDiverged
from storage import StorageError
from studies.analysis.stored import StoredStudyError
from studies.cluster.local import UsageError
from studies.cluster.state import ClusterError
from studies.service.lease import LeaseLost, StudyBusy
from studies.service.options import StudyError

REPO = Path(__file__).resolve().parents[1]
PROJECT_ERRORS = (
    ConfigError,
    DataError,
    TrainingDiverged,
    StorageError,
    StoredStudyError,
    StudyBusy,
    LeaseLost,
    StudyError,
    ClusterError,
    UsageError,
)


@pytest.mark.parametrize("error", PROJECT_ERRORS, ids=lambda error: error.__name__)
def test_every_project_error_is_a_user_error(error: type[Exception]) -> None:
    assert issubclass(error, UserError)


def test_no_command_catches_a_tuple_of_project_errors() -> None:
    """A new kind of user error needs no new except clause anywhere: UserError covers it."""
    names = {error.__name__ for error in PROJECT_ERRORS}
    tuples = []
    for path in sorted([*REPO.glob("sidae/*.py"), *REPO.glob("storage/*.py"), *REPO.glob("studies/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Tuple):
                caught = {element.id for element in node.type.elts if isinstance(element, ast.Name)}
                if caught & names:
                    tuples.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert tuples == []


def test_a_logged_warning_is_one_line_on_stderr_and_no_module_prints_one(capsys: pytest.CaptureFixture[str]) -> None:
    """Modules log warnings; each command's print_warnings shows them as `warning: ...`."""
    print_warnings()
    print_warnings()  # a second call adds no second handler: still one line
    logging.getLogger("studies.service.runner").warning("could not store %s", "x")
    logging.getLogger("studies.service.runner").info("not shown")
    assert capsys.readouterr().err == "warning: could not store x\n"

    printed = []
    for path in sorted([*REPO.glob("sidae/*.py"), *REPO.glob("storage/*.py"), *REPO.glob("studies/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("warning:"):
                printed.append(str(path.relative_to(REPO)))
    assert printed == ["sidae/errors.py"]  # print_warnings' own handler, the one place
