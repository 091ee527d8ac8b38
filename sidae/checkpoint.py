"""Atomic files (checkpoints, results): written to a temporary name, flushed to disk, then
renamed, so a crash or a full disk never leaves a half file that a resume or a reader would load."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """torch.save `state` to `path` atomically.

    Serialised in memory first and written with Python's own file I/O: torch.save streaming to
    a full disk fails with an opaque "enforce fail at inline_container.cc" instead of the
    OSError (errno 28, "No space left on device") a user can act on."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getbuffer())


def write_atomic(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to a temporary name beside `path`, flush it to disk, rename it over `path`:
    readers see the old file or the new one, never a half one (a crash, a full disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, device: torch.device) -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)
