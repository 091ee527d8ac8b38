"""The one error type the storage layer raises for bad URLs, unreachable databases and
unusable artifact folders."""

from __future__ import annotations

from sidae.errors import UserError


class StorageError(UserError, ValueError):
    """A storage URL or artifact folder that cannot be used, in one printable line.

    A ValueError because it is nearly always a bad value given by the user (a typo in a URL, a
    server that is not running); its message never contains a password, so a command-line entry
    point can print it as is instead of a traceback.
    """
