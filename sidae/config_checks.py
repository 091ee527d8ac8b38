"""The checks every configuration value goes through, and the one error they raise.

Range checks run in each config dataclass's `__post_init__`, so a bad value fails with one
line before any data is read; `typed` checks a value given by dotted path (a `--set` flag, a
study's parameter) against the field's type hint, read with `typing.get_type_hints`.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from sidae.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value outside its allowed range; the message is one line for the user."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_probability(name: str, value: float) -> None:
    check(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")


def typed(path: str, value: Any, expected: Any) -> Any:
    """`value` as the field's type (an int where a float is expected, a list where a tuple is),
    or a one-line ConfigError: a --set value of the wrong type must not become a traceback deep
    in the trainer."""
    kinds = typing.get_args(expected) if typing.get_origin(expected) is types.UnionType else (expected,)
    if value is None and type(None) in kinds:
        return None
    kind = next(k for k in kinds if k is not type(None))
    if kind is bool and isinstance(value, bool):
        return value
    if kind in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
        if kind is float:
            return float(value)
        if float(value).is_integer():
            return int(value)
    if kind is str and isinstance(value, str):
        return value
    if typing.get_origin(kind) is tuple and isinstance(value, tuple | list):
        return tuple(typed(path, item, typing.get_args(kind)[0]) for item in value)
    raise ConfigError(f"{path} expects {_describe(kind)}, got {value!r}")


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return "a list of numbers, e.g. (0.01, 0.1)"
    return {bool: "True or False", int: "a whole number", float: "a number", str: "text"}.get(kind, str(kind))
