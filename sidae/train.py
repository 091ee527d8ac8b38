"""Pre-train SidAE on one data set and evaluate it: `python -m sidae.train --help`.

Example: python -m sidae.train --dataset mnist --w 0.5 --epochs 5 --out runs/x
         python -m sidae.train --dataset cifar10-jpeg --data-dir ../shared/data --epochs 1 --out runs/c
Writes <out>/results.json (config, per-epoch history, linear / fine-tune test accuracy per
label fraction, and the controls: the same linear probe on the untrained encoder and on raw
pixels) and <out>/checkpoint.pt; rerunning the same command resumes from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sidae.allocator import keep_freed_memory
from sidae.arguments import Parser, bounded, comma_separated
from sidae.config import (
    BACKBONES,
    CPU_FINETUNE_STEPS,
    CPU_MODEL,
    DATASETS,
    DEVICES,
    MAX_SEED,
    NOISE_KINDS,
    SidAEConfig,
    default_config,
    override,
    uses_gpu,
)
from sidae.data import load_splits
from sidae.errors import UserError, exit_on, print_warnings
from sidae.evaluate import describe_splits
from sidae.experiment import RESULTS_FILE, RunResult, run

# CLI flag -> config field (dotted path, see sidae.config.override).
FLAG_FIELDS: dict[str, str] = {
    "w": "w",
    "seed": "seed",
    "device": "device",
    "cpu_bf16": "cpu_bf16",
    "noise_at_w1": "noise_at_w1",
    "siamese_noise": "siamese_noise",
    "normalize_losses": "normalize_losses",
    "data_dir": "data.data_dir",
    "train_limit": "data.train_limit",
    "val_size": "data.val_size",
    "image_size": "data.image_size",
    "download": "data.download",
    "verify": "data.verify",
    "backbone": "model.backbone",
    "width": "model.width",
    "proj_dim": "model.proj_dim",
    "pred_dim": "model.pred_dim",
    "decoder_width": "model.decoder_width",
    "decoder_input": "model.decoder_input",
    "noise": "noise.kind",
    "noise_level": "noise.level",
    "crop_scale_min": "augment.crop_scale_min",
    "flip_prob": "augment.flip_prob",
    "jitter": "augment.jitter",
    "grayscale_prob": "augment.grayscale_prob",
    "rotation": "augment.rotation",
    "translate": "augment.translate",
    "optimizer": "optim.optimizer",
    "epochs": "optim.epochs",
    "batch_size": "optim.batch_size",
    "lr": "optim.base_lr",
    "weight_decay": "optim.weight_decay",
    "label_fractions": "eval.label_fractions",
    "finetune": "eval.finetune",
    "finetune_steps": "eval.finetune_steps",
    "recompute_bn": "eval.recompute_bn",
}


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m sidae.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Unset options take the data set's defaults (see sidae/config.py: DATASET_DEFAULTS). On a CPU the "
        f"ResNet-18 data sets (cifar10, cifar10-jpeg, stl10, imagefolder) default to a REDUCED network (width "
        f"{CPU_MODEL.width}, projector {CPU_MODEL.proj_dim}) and --finetune-steps "
        f"{CPU_FINETUNE_STEPS}, so a first run takes minutes; on a GPU "
        "they default to the paper's full-width ResNet-18 (width 64).",
    )
    p.add_argument("--dataset", default="mnist", help=f"one of {', '.join(DATASETS)} (default mnist)")
    p.add_argument(
        "--data-dir",
        help="where the data sets are (default $SIDAE_DATA_DIR, else ./data); for "
        "imagefolder the folder holding train/<class>/* and test/<class>/*; cifar10-jpeg reads "
        "<data-dir>/CIFAR10-JPEG",
    )
    p.add_argument("--out", type=Path, help="run folder for results.json and checkpoint.pt")
    p.add_argument("--w", type=float, help="loss weight in [0, 1]: 1 = SimSiam, 0 = denoising AE (default 0.5)")
    p.add_argument(
        "--normalize-losses",
        action="store_true",
        default=None,
        help="divide each loss term by a running estimate of its size (w then balances comparable terms)",
    )
    g = p.add_argument_group("noise")
    g.add_argument("--noise", help=f"noise kind: {', '.join(NOISE_KINDS)}")
    g.add_argument("--noise-level", type=float, help="gaussian sigma, or the fraction of pixels hit")
    g.add_argument("--noise-at-w1", action="store_true", default=None, help="also noise the views at w = 1")
    g.add_argument(
        "--no-siamese-noise",
        dest="siamese_noise",
        action="store_false",
        default=None,
        help="for 0 < w < 1, the Siamese branch encodes the clean views (SimSiam's inputs; docs/method.md)",
    )
    g = p.add_argument_group("augmentation strengths (0 disables one)")
    g.add_argument("--crop-scale-min", type=float, help="random resized crop: smallest area fraction")
    g.add_argument("--flip-prob", type=float, help="horizontal flip probability")
    g.add_argument("--jitter", type=float, help="colour-jitter strength in [0, 1]")
    g.add_argument("--grayscale-prob", type=float, help="random grayscale probability (RGB only)")
    g.add_argument("--rotation", type=float, help="max rotation in degrees")
    g.add_argument("--translate", type=float, help="max translation as a fraction of the side")
    g = p.add_argument_group("model")
    g.add_argument("--backbone", help=f"encoder: {', '.join(BACKBONES)}")
    g.add_argument(
        "--width",
        type=int,
        help=f"channels of the first encoder stage (ResNet-18: 64 on a GPU, {CPU_MODEL.width} on a CPU)",
    )
    g.add_argument("--proj-dim", type=int, help="projector width")
    g.add_argument("--pred-dim", type=int, help="predictor bottleneck width")
    g.add_argument("--decoder-width", type=int, help="channels of the last decoder stage")
    g.add_argument(
        "--decoder-input", help="what the decoder reconstructs from: pooled (default) or feature_map (docs/method.md)"
    )
    g = p.add_argument_group("training")
    g.add_argument("--optimizer", help="sgd (SimSiam's recipe, the default) or adamw (for short budgets)")
    g.add_argument("--epochs", type=int, help="pre-training epochs (default 10)")
    g.add_argument("--batch-size", type=int, help="batch size (default 256)")
    g.add_argument("--lr", type=float, help="base lr, scaled by batch/256 (default 0.05; ~1e-3 for adamw)")
    g.add_argument("--weight-decay", type=float, help="SGD weight decay (default 1e-4)")
    g.add_argument(
        "--seed",
        type=bounded(int, minimum=0, maximum=MAX_SEED),
        help="seed for init, views, noise and label subsets, 0 to 2**32 - 1 (default 0)",
    )
    g.add_argument("--device", help=f"{DEVICES} (default auto)")
    g.add_argument(
        "--cpu-bf16",
        action="store_true",
        default=None,
        help="pre-train under bfloat16 autocast on the CPU too (CUDA always does): about 2x on CPUs with AMX "
        "(Intel Sapphire Rapids and later), slower on CPUs without bfloat16 units",
    )
    g.add_argument(
        "--threads",
        type=bounded(int, minimum=1),
        help="CPU threads for torch, >= 1 (default: torch's choice). Where other work keeps "
        "cores busy, give only the free ones: threads left without a core spin for one (two threads beside "
        "one busy process took 4x as long as one thread; benchmarks/README.md)",
    )
    g = p.add_argument_group("data")
    g.add_argument("--train-limit", type=int, help="pre-train on a fixed subset of N images")
    g.add_argument(
        "--val-size",
        type=int,
        help="validation images carved from the training set (default: a tenth of it, at most 5000)",
    )
    g.add_argument("--image-size", type=int, help="image folders: resize images to this side (default 32)")
    g.add_argument(
        "--no-download", dest="download", action="store_false", default=None, help="never try to download missing data"
    )
    g.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        default=None,
        help="accept CIFAR/STL files whose MD5 differs from torchvision's",
    )
    g = p.add_argument_group("evaluation")
    g.add_argument(
        "--recompute-bn",
        action="store_true",
        default=None,
        help="probe with BN statistics recomputed on clean training images, the controls too (docs/method.md)",
    )
    g.add_argument(
        "--label-fractions", type=comma_separated(float), help="comma-separated, in (0, 1] (default 0.01,0.1,1)"
    )
    g.add_argument(
        "--no-finetune", dest="finetune", action="store_false", default=None, help="skip the fine-tuning evaluation"
    )
    g.add_argument(
        "--finetune-steps",
        type=int,
        help=f"SGD steps per fine-tuning run (default 300; {CPU_FINETUNE_STEPS} for a ResNet-18 on a CPU)",
    )
    g.add_argument(
        "--no-controls",
        dest="controls",
        action="store_false",
        help="skip the controls (the linear probe on the untrained encoder and on raw pixels; on MNIST on 2 CPU "
        "cores about half a minute)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> SidAEConfig:
    """The data set's default config with every flag the user gave applied on top."""
    given = {path: getattr(args, flag) for flag, path in FLAG_FIELDS.items() if getattr(args, flag) is not None}
    return override(default_config(args.dataset, device=args.device or "auto"), given)


def reduced_note(cfg: SidAEConfig) -> str | None:
    """Say so when the run uses the CPU's reduced network instead of the paper's."""
    if cfg.model != CPU_MODEL or uses_gpu(cfg.device):
        return None
    return (
        f"note: on a CPU {cfg.data.dataset} defaults to a reduced ResNet-18 (width {cfg.model.width}, not the "
        "paper's 64); on a GPU it trains the full width (or pass --width 64 --decoder-width 64 --proj-dim 2048 "
        "--pred-dim 512)"
    )


# sidae.timing's phases, as the summary's time line names them
PHASE_LABELS = {
    "data_load": "data",
    "model_setup": "set-up",
    "pretrain": "pre-training",
    "monitor": "kNN monitor",
    "checkpoint": "checkpoints",
    "eval_features": "encoding",
    "linear_probes": "linear probes",
    "finetune": "fine-tuning",
    "controls": "controls",
}


def summary(result: RunResult) -> str:
    cfg = result.config
    lines = [
        f"SidAE w={cfg.w:g} on {cfg.data.dataset}: {len(result.history)} epoch(s), "
        f"{result.wall_seconds:.0f} s on {result.device}",
        f"{'labels':>8}  {'linear':>7}  {'fine-tune':>9}" + "".join(f"  {name:>9}" for name in result.controls),
    ]
    for key in result.linear or result.finetune:
        linear, tuned = result.linear.get(key), result.finetune.get(key)
        controls = "".join(f"  {_cell(scores.get(key)):>9}" for scores in result.controls.values())
        lines.append(f"{float(key):>8.0%}  {_cell(linear):>7}  {_cell(tuned):>9}{controls}")
    if result.controls:
        lines.append(
            "controls: the same linear probe on the untrained encoder (this seed's initial weights) and on raw pixels"
        )
    lines.append(f"kNN (k={cfg.eval.knn_k}) test accuracy: {result.knn:.4f}")
    spent = [
        f"{label} {result.phase_seconds[phase]:.0f} s"
        for phase, label in PHASE_LABELS.items()
        if phase in result.phase_seconds
    ]
    if spent:
        lines.append("time: " + ", ".join(spent))
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    print_warnings()
    args = parser().parse_args(argv)
    keep_freed_memory()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        cfg = config_from_args(args)
        data = load_splits(cfg.data)
        for line in (reduced_note(cfg), describe_splits(data, cfg.eval.label_fractions)):
            if line:
                print(line, flush=True)
        result = run(cfg, out_dir=args.out, data=data, progress=not args.quiet, controls=args.controls)
    except UserError as error:
        return exit_on(error)
    print(summary(result))
    if args.out is not None:
        print(f"results: {args.out / RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
