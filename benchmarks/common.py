"""What the benchmark scripts share: arguments, device set-up, synthetic data, timing, output.

Every figure is printed as one `name: value` line. A timing is the median over repeats of about
--repeat-seconds each, taken after a warm-up, with the device synchronised around each repeat;
when several variants are timed they take turns repeat by repeat, so a noisy neighbour on the
machine slows all of them alike.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from sidae.allocator import keep_freed_memory
from sidae.data import DataSplits, channel_stats
from sidae.image_set import ImageSet, to_float
from sidae.pretraining import resolve_device

REPO = Path(__file__).resolve().parents[1]
BATCH = 256
Step = Callable[[], object]


def parser(doc: str | None, timing: bool = True) -> argparse.ArgumentParser:
    """--device and --threads; with `timing`, also the options of images_per_second."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    if timing:
        p.add_argument("--repeats", type=int, default=5, help="timed repeats per figure; the median is printed")
        p.add_argument("--repeat-seconds", type=float, default=1.0, help="approximate length of one repeat")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Set the thread count and resolve --device the way sidae does; exit with one line if the
    device is unavailable."""
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as every sidae and study process does
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as error:
        sys.exit(f"{Path(sys.argv[0]).name}: {error}")
    emit("device", torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")
    emit("threads", args.threads)
    if Path("/proc/stat").exists():  # Linux only; elsewhere the figure is left out
        atexit.register(_report_others, _busy_seconds(), _own_seconds())
    return device


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (Linux's /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its finished children (the DataLoader workers)."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _report_others(busy_start: float, own_start: float) -> None:
    """Other processes' CPU time during the run: a few seconds or more and the figures above
    are not to be trusted (with 2 threads on 2 cores, torch's kernels slow down many times
    over when anything else runs)."""
    others = (_busy_seconds() - busy_start) - (_own_seconds() - own_start)
    emit("other_processes_cpu_seconds", max(0.0, others))


def emit(name: str, value: object) -> None:
    if isinstance(value, float) and math.isfinite(value):
        value = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    print(f"{name}: {value}", flush=True)


def synthetic_splits(name: str, shape: tuple[int, int, int], n: int) -> DataSplits:
    """Random uint8 images (labels all 0) in sidae's DataSplits, for benchmarks that need no files."""
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labelled = ImageSet(images, torch.zeros(n, dtype=torch.int64))
    mean, std = channel_stats(images)
    return DataSplits(name, labelled, labelled, labelled, labelled, 10, mean, std)


def float_batches(images: torch.Tensor, generator: torch.Generator, batch: int = BATCH) -> Iterator[torch.Tensor]:
    """Endless float batches sliced from uint8 `images` in a random order on their device, as
    sidae.pretraining._epoch makes them."""
    order = torch.randperm(len(images), generator=generator, device=generator.device).to(images.device)
    for i in itertools.cycle(range(len(images) // batch)):
        yield to_float(images[order[i * batch : (i + 1) * batch]], images.device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Step, n: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    synchronize(device)
    return time.perf_counter() - start


def _warm_up(step: Step, device: torch.device, min_steps: int, min_seconds: float = 1.0) -> float:
    """Run until both limits are passed; return the mean seconds per step after the first (which
    pays for one-off set-up: kernel selection, worker start-up)."""
    _timed(step, 1, device)
    spent, steps = 0.0, 0
    while steps < min_steps or spent < min_seconds:
        spent, steps = spent + _timed(step, 1, device), steps + 1
    return spent / steps


def repeat_rates(
    steps: dict[str, Step],
    device: torch.device,
    repeats: int,
    repeat_seconds: float,
    min_steps: int = 2,
    images_per_step: int = BATCH,
) -> dict[str, list[float]]:
    """Images/s of each step function in each repeat; the variants take turns repeat by repeat.
    A repeat has at least min_steps steps (more than a DataLoader keeps in flight, so prefetched
    batches cannot fake a rate)."""
    counts = {
        name: max(min_steps, round(repeat_seconds / _warm_up(step, device, min_steps))) for name, step in steps.items()
    }
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            rates[name].append(counts[name] * images_per_step / _timed(step, counts[name], device))
    return rates


def medians(rates: dict[str, list[float]]) -> dict[str, float]:
    """Each variant's median rate over its repeats (of repeat_rates)."""
    return {name: statistics.median(values) for name, values in rates.items()}


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repeats of one variant's rate over another's in the same repeat: the two ran
    back to back, so a slow spell of the machine that spans both cancels out."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def timed_study(folder: Path, *args: str) -> tuple[float, str]:
    """Run `python studies/run.py ARGS` quietly with its SQLite file, artifacts (trial folders
    and checkpoints) and Ray folder all in `folder`; return its wall seconds and storage URL.
    A folder of its own per run: trial folders are named by config, so a second study of the
    same grid beside the first would resume from the first one's checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'studies.db'}"
    command = [
        sys.executable,
        str(REPO / "studies" / "run.py"),
        *args,
        "--storage",
        url,
        "--quiet",
        "--ray-dir",
        str(folder / "ray"),
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, url
