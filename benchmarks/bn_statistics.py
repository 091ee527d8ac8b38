"""The effect of recomputing BN statistics on clean training images (EvalConfig.recompute_bn)
on the linear probe, for trained encoders and for their untrained controls.

    .venv/bin/python benchmarks/bn_statistics.py RUN_DIR [RUN_DIR ...] --threads 1

Each RUN_DIR is a `python -m sidae.train --out` folder (results.json + checkpoint.pt). Prints one
`name: value` line per figure: test accuracy of the linear probe at each of the run's label
fractions, with the trained statistics ("as_trained") and recomputed ("recomputed"), for the
trained encoder and for the untrained one of the same seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sidae.batchnorm import with_clean_statistics
from sidae.checkpoint import load
from sidae.config import SidAEConfig
from sidae.controls import probe_on_test
from sidae.data import DataSplits, load_splits
from sidae.evaluate import extract_features
from sidae.experiment import CHECKPOINT_FILE, RESULTS_FILE
from sidae.pretraining import build_model


def probes(encoder: torch.nn.Module, data: DataSplits, cfg: SidAEConfig) -> dict[str, float]:
    device = torch.device("cpu")
    return probe_on_test(lambda images: extract_features(encoder, images, device), data, cfg, device)


def measure(run_dir: Path) -> None:
    cfg = SidAEConfig.from_dict(json.loads((run_dir / RESULTS_FILE).read_text())["config"])
    data, device = load_splits(cfg.data), torch.device("cpu")
    trained = build_model(cfg, data, device)
    trained.load_state_dict(load(run_dir / CHECKPOINT_FILE, device)["model"])
    untrained = build_model(cfg, data, device)
    for name, model in (("trained", trained), ("untrained", untrained)):
        clean = with_clean_statistics(model.encoder, data.pretrain.images, device, cfg.seed)
        for stats, encoder in (("as_trained", model.encoder), ("recomputed", clean)):
            for fraction, accuracy in probes(encoder, data, cfg).items():
                print(f"{run_dir.name}_w{cfg.w:g}_{name}_{stats}_linear_{fraction}: {accuracy:.4f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for run_dir in args.runs:
        measure(run_dir)


if __name__ == "__main__":
    main()
