"""What the project's command lines share: a parser whose errors are one line, and the argument
type of a number with an allowed range.

Bad input on a command line is one line on stderr and exit status 2, before anything is
written (docs/reliability.md, "Bad input"). argparse's own error prints the usage first and
names the program; and an `int` or `float` type lets through values that the code then acts on
silently (`--max-retries -1` runs nothing) or fails on later, after Ray or the storage has
started (`--max-concurrent 0`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn, TypeVar

Number = TypeVar("Number", int, float)
T = TypeVar("T")


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser with one-line errors: `error: argument --port: ...`, exit status 2
    (argparse's own status), without the usage that argparse prints first (--help shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")


def bounded(
    cast: Callable[[str], Number],
    *,
    minimum: Number | None = None,
    above: Number | None = None,
    maximum: Number | None = None,
) -> Callable[[str], Number]:
    """An argparse type: `cast(text)` (int or float) that is >= minimum, > above and <= maximum
    (each bound optional). A float must also be finite: NaN compares false with every bound,
    so `nan <= 0` would let it through, and inf passes any lower bound."""
    kind = "a whole number" if cast is int else "a finite number"
    limits = [
        f"{sign} {bound}" for sign, bound in ((">=", minimum), (">", above), ("<=", maximum)) if bound is not None
    ]
    allowed = " ".join([kind, " and ".join(limits)]) if limits else kind

    def parse(text: str) -> Number:
        value = cast(text)  # a ValueError here is argparse's "invalid int value: 'x'"
        if (
            (isinstance(value, float) and not math.isfinite(value))
            or (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    parse.__name__ = cast.__name__  # argparse names the type by it in "invalid int value"
    return parse


def comma_separated(cast: Callable[[str], T]) -> Callable[[str], tuple[T, ...]]:
    """An argparse type for lists like 0.01,0.1,1 (floats) or 0,1,2 (ints)."""

    def parse(text: str) -> tuple[T, ...]:
        try:
            return tuple(cast(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {cast.__name__}s, got {text!r}") from None

    return parse
