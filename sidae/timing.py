"""Where a run's time goes: wall-clock seconds per phase, and the progress lines of the long ones.

Phases never overlap, so their seconds add up to (at most) the time the run took. The names
sidae measures (a study's trial adds its own: studies.analysis.phases lists them all):

    data_load      decoding the data set (only when run() loads it itself)
    model_setup    building the model and optimiser, resuming a checkpoint, images to the device
    pretrain       the pre-training epochs (the sum of the epochs' train_seconds in this run)
    monitor        the per-epoch validation kNN monitor and collapse indicator
    checkpoint     writing the per-epoch resume checkpoint
    report         the per-epoch callback (a study reports the epoch to Ray Tune there)
    eval_features  encoding the labelled, validation and test images once, and the test kNN
    linear_probes  the linear probes on those features, one per label fraction
    finetune       fine-tuning the encoder, one run per label fraction
    results_file   writing results.json (after it is written: the file itself lacks it)

On a GPU the clock is read where the code waits for the device anyway (a loss or an accuracy
copied to the host), so the phases are right to within a few kernels.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


class PhaseTimer:
    """Seconds per phase name, summed over every time the phase ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def merge(self, seconds: dict[str, float]) -> None:
        for name, value in seconds.items():
            self.add(name, value)


def say(progress: bool, text: str) -> None:
    """One progress line on stderr (beside any tqdm bar), only when progress is on."""
    if progress:
        tqdm.write(text, file=sys.stderr)
        sys.stderr.flush()
