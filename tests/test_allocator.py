"""sidae.allocator: after keep_freed_memory, glibc serves large blocks from its heap, where it
reuses them, instead of with fresh mmap'd pages each time (see the module's docstring)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# A fresh process's count of mmap'd blocks (glibc's mallinfo2) around one 16 MiB tensor: larger
# than any block torch's import freed, so glibc's moving threshold has not reached it.
_MMAPPED_BLOCKS = """
import ctypes, sys, torch
from sidae.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
before = libc.mallinfo2().hblks
block = torch.ones(4 * 2**20)
print(kept, libc.mallinfo2().hblks - before)
"""


def _new_mmapped_blocks(setting: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _MMAPPED_BLOCKS, setting], check=True, capture_output=True, text=True)
    return out.stdout.split()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's thresholds are glibc's")
def test_large_blocks_come_from_the_heap_once_freed_memory_is_kept() -> None:
    assert _new_mmapped_blocks("default") == ["None", "1"]  # glibc's default: fresh pages
    assert _new_mmapped_blocks("keep") == ["True", "0"]
