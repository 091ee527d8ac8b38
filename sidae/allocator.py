"""Keep freed host memory in the process, so that a training step's tensors do not fault their
pages in anew every step.

glibc's malloc serves blocks above its mmap threshold with fresh mmap'd pages and gives the
free top of its heap back to the kernel above its trim threshold. Both thresholds move with the
allocations seen, so on the CPU a step's image-sized temporaries (a batch of views, the
activations) were served with fresh pages in some runs and not others: the SidAE step of 32x32
RGB images at batch 32 took 65 to 1,600 page faults per batch of views and 300 to 1,100 per model
step, and the views took 3.0 to 4.6 ms between runs of the same code (benchmarks/README.md). Fixed
thresholds stop that: freed blocks up to 32 MiB (glibc's largest mmap threshold on 64-bit) stay
in the heap for the next step, and up to 256 MiB of free heap is kept before trimming. The cost
is memory the process holds after a peak until it exits, not a higher peak.

Only the two together help: setting one fixes the other at its default (128 KiB), which is
worse than leaving both to move.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 256 * 2**20


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (see the module's docstring).

    True if glibc took both; False elsewhere (macOS, Windows, musl's mallopt does nothing),
    where the process's allocator is left as it is.
    """
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the C library the process already loaded
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
