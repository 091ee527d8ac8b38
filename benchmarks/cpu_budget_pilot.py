"""One pilot trial of a candidate `cpu` budget: the study's CPU_RGB32 budget (or another) with
some fields changed, run exactly as a study's trial configures it, with the controls on.

    .venv/bin/python benchmarks/cpu_budget_pilot.py --out runs/p1 --threads 1 \
        --set optim.batch_size=64 --set optim.base_lr=0.004

Prints one JSON line: the settings changed, wall seconds, pre-training images/s, the linear
probe per label fraction, the untrained-encoder control and the margin over it in points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sidae.config import default_config, override
from sidae.data import load_splits
from sidae.experiment import run
from studies.service.budgets import budget_for


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="cifar10-jpeg")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--budget", default="cpu")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="a dotted config path")
    p.add_argument(
        "--untrained",
        type=json.loads,
        help='the seed\'s untrained-encoder control from an earlier pilot, e.g. {"0.1": 0.3443}: skips the controls',
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    changes = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    values = {
        **budget_for(args.budget, args.dataset).config_values(),
        "data.data_dir": args.data_dir,
        "data.download": False,
        "device": "cpu",
        "w": 0.5,
        "eval.label_fractions": (0.01, 0.1),
        "eval.finetune": False,
        **changes,
    }
    cfg = override(default_config(args.dataset, device="cpu"), values)
    controls = args.untrained is None
    result = run(cfg, out_dir=args.out, data=load_splits(cfg.data), progress=False, controls=controls)
    untrained = result.controls["untrained"] if controls else args.untrained
    print(
        json.dumps(
            {
                "set": changes,
                "wall_seconds": round(result.wall_seconds),
                "pretrain_seconds": round(result.phase_seconds.get("pretrain", 0.0)),
                "images_per_second": round(sum(e["images_per_second"] for e in result.history) / len(result.history)),
                "knn_per_epoch": [round(e["knn_acc"], 4) for e in result.history],
                "linear": result.linear,
                "untrained": untrained,
                "margin_points": {k: round(100 * (v - untrained[k]), 1) for k, v in result.linear.items()},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
