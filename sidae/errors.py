"""The one base class of the errors a user can act on, across the project's layers, and how
every command shows them and the warnings the project logs.

A typo in an option, a missing data file, an unreachable database, a study another driver runs:
each layer raises its own kind (ConfigError, DataError, StorageError, StudyError, ...), all of
them a UserError, so that every command's `main` catches this one class, prints its message as
one line and exits 2 (`exit_on`). Any other exception is a bug, and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

EXIT_BAD_INPUT = 2  # argparse's own status for a bad command line


class UserError(Exception):
    """Bad input or an unusable environment, in one printable line that says what to change.
    Its message never holds a password: a command prints it as it is."""


def exit_on(error: UserError) -> int:
    """Print `error: MESSAGE` on stderr; the exit status for it."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


PROJECT_LOGGERS = ("sidae", "studies", "storage")


class _WarningLine(logging.Handler):
    """`warning: MESSAGE` on the stderr of the moment (a test may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"warning: {record.getMessage()}", file=sys.stderr, flush=True)


def print_warnings() -> None:
    """Show what the project's modules log at WARNING and above as one line each on stderr,
    the way every command shows it: modules log (`logging.getLogger(__name__).warning`) and
    never print a warning themselves, so a library user routes them where they like. Called by
    each command's `main`; calling it again adds nothing."""
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(handler, _WarningLine) for handler in logger.handlers):
            logger.addHandler(_WarningLine(logging.WARNING))
