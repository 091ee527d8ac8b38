"""The one base class of the errors a user can act on, across the project's layers.

A typo in an option, a missing data file, an unreachable database, a study another driver runs:
each layer raises its own kind (ConfigError, DataError, StorageError, StudyError, ...), all of
them a UserError, so that every command's `main` catches this one class, prints its message as
one line and exits 2 (`exit_on`). Any other exception is a bug, and keeps its traceback.
"""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2  # argparse's own status for a bad command line


class UserError(Exception):
    """Bad input or an unusable environment, in one printable line that says what to change.
    Its message never holds a password: a command prints it as it is."""


def exit_on(error: UserError) -> int:
    """Print `error: MESSAGE` on stderr; the exit status for it."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT
