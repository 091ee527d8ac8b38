"""The packed w-sweep of benchmarks/gpu_sweep.sh, summarised from its study: each trial's
pre-training images/s, GPU and GPU memory, the aggregate images/s of the packed GPU, and
SimSiam's (w = 1) kNN accuracy beside lightly's published SimSiam CIFAR-10 figure.

    python benchmarks/gpu_sweep_summary.py --storage sqlite:///OUT/study.db --name gpu-sweep \
        [--memory OUT/gpu_memory.csv]

--memory: `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms N`
samples; a trial's memory is the peak over the samples of its worker's process (user attribute
`pid`). Without it (no GPU) the column says so.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

# lightly's CIFAR-10 benchmark (https://docs.lightly.ai/getting_started/benchmarks.html, "Cifar10
# benchmark results"): SimSiam with a 2-layer MLP head, ResNet-18 with a 3x3 stem and no max-pool,
# 200 epochs at batch 128, kNN (k = 200) on the test set embedded after every epoch, the best
# epoch's accuracy: 0.73 (peak GPU memory 3.0 GB). The same page's later version lists 800-epoch
# runs; this is its 200-epoch figure, the nearest to this sweep's 20 epochs.
LIGHTLY_SIMSIAM = {"knn_accuracy": 0.73, "epochs": 200, "batch_size": 128, "knn_k": 200, "gpu_memory_gb": 3.0}
LIGHTLY_SOURCE = "https://docs.lightly.ai/getting_started/benchmarks.html (Cifar10 benchmark results, SimSiam)"


def peak_memory(path: Path | None) -> dict[int, float]:
    """pid -> the largest used_memory (MiB) sampled for it; empty without samples."""
    peaks: dict[int, float] = defaultdict(float)
    if path is None or not path.is_file():
        return {}
    for row in csv.reader(path.read_text().splitlines()):
        try:
            pid, used = int(row[0]), float(row[1])
        except (IndexError, ValueError):
            continue  # a header, a blank or "[N/A]"
        peaks[pid] = max(peaks[pid], used)
    return dict(peaks)


def trial_images(trial: FrozenTrial) -> float:
    """Pre-training images the trial went through: its last epoch's rate times its training time."""
    return float(trial.user_attrs.get("images_per_second", 0.0)) * float(
        trial.user_attrs.get("train_seconds_total", 0.0)
    )


def summary(trials: list[FrozenTrial], memory: dict[int, float]) -> list[str]:
    lines = [
        "| trial | w | state | device | GPU ids | epochs | images/s (last epoch) | pre-training s "
        "| GPU memory MiB (peak) | val kNN (last) | test kNN |",
        "|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in trials:
        a = t.user_attrs
        mem = memory.get(int(a["pid"])) if "pid" in a else None
        curve = t.intermediate_values
        lines.append(
            f"| {t.number} | {t.params.get('w', float('nan')):g} | {t.state.name} | {a.get('device', '?')} "
            f"| {','.join(a.get('gpu_ids', [])) or '-'} | {a.get('epochs_done', len(curve))} "
            f"| {a.get('images_per_second', float('nan')):.0f} | {a.get('train_seconds_total', float('nan')):.1f} "
            f"| {'n/a' if mem is None else f'{mem:.0f}'} "
            f"| {curve[max(curve)] if curve else float('nan'):.3f} | {a.get('test_knn', float('nan')):.3f} |"
        )
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.datetime_start and t.datetime_complete]
    if done:
        span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
        images = sum(trial_images(t) for t in done)
        per_gpu = defaultdict(list)
        for t in done:
            per_gpu[",".join(t.user_attrs.get("gpu_ids", [])) or "none"].append(t.number)
        rates = sum(float(t.user_attrs.get("images_per_second", 0)) for t in done)
        lines += [
            "",
            f"aggregate: {images:,.0f} pre-training images in {span:.0f} s from the first trial's start to the "
            f"last one's end = {images / span:,.0f} images/s over {len(done)} complete trial(s); "
            f"sum of the trials' rates: {rates:,.0f} images/s",
            "trials per GPU id: " + "; ".join(f"{gpu}: {len(numbers)}" for gpu, numbers in sorted(per_gpu.items())),
        ]
    return lines


def simsiam_lines(trials: list[FrozenTrial]) -> list[str]:
    """SimSiam is SidAE at w = 1: its kNN accuracy beside lightly's."""
    simsiam = [t for t in trials if t.params.get("w") == 1.0 and t.state == TrialState.COMPLETE]
    ref = LIGHTLY_SIMSIAM
    lines = [
        "",
        f"lightly's SimSiam on CIFAR-10: kNN accuracy {ref['knn_accuracy']:.2f} after {ref['epochs']} epochs "
        f"(batch {ref['batch_size']}, k = {ref['knn_k']}, best epoch; {ref['gpu_memory_gb']} GB peak GPU memory); "
        f"source: {LIGHTLY_SOURCE}",
    ]
    for t in simsiam:
        lines.append(
            "this sweep's SimSiam (w = 1), CIFAR-10 (JPEG copy): test kNN accuracy "
            f"{t.user_attrs.get('test_knn', float('nan')):.3f} "
            f"after {t.user_attrs.get('epochs_done', '?')} epochs (k = 20 on the study's kNN bank, last epoch): "
            "not the same schedule, so a sanity check of the order of magnitude, not a comparison"
        )
    if not simsiam:
        lines.append("this sweep's SimSiam (w = 1): no complete trial")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--memory", type=Path, help="nvidia-smi's per-process samples (csv)")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=args.name, storage=args.storage)
    except KeyError:
        print(f"gpu_sweep_summary.py: no study {args.name!r} in {args.storage}", file=sys.stderr)
        return 1
    trials = sorted(study.trials, key=lambda t: t.number)
    print("\n".join(summary(trials, peak_memory(args.memory)) + simsiam_lines(trials)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
