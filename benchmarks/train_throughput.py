"""Images/s of a full SidAE training step against the bare model on the same batch.

The full step is what sidae.pretraining._epoch does per batch (256; the `cpu` budget of 32x32 RGB
data, the rgb32_cpu_budget case, trains its conv net at 32): slice uint8 images from an
in-memory tensor on the device, convert them to float (sidae.image_set.to_float), make two augmented,
noised views (sidae.pretraining.make_views) and run sidae.pretraining.train_step on them
(forward/backward, SGD step). The bare step runs the same train_step on views made once
beforehand (same model, same w), so
ratio_to_bare_model = full / bare is the share of the step's time left to the model; the rest
is the batched view pipeline. Target: ratio >= 0.9 on CPU. Images are random uint8, so no data
files are needed. --compile also times the full step with torch.compile(model).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from common import (
    BATCH,
    Step,
    emit,
    float_batches,
    medians,
    paired_ratio,
    parser,
    repeat_rates,
    setup,
    synthetic_splits,
)

from sidae.config import SidAEConfig, default_config, override
from sidae.image_set import to_float
from sidae.pretraining import Views, build_model, build_optimizer, make_views, train_step
from studies.service.budgets import CPU_RGB32

CPU_RESNET_WIDTH = 16  # 0.85 s a step on 2 CPU cores; the full width, 64, has 16x the convolution work


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str  # which sidae.config.default_config
    shape: tuple[int, int, int]
    w: float
    batch: int = BATCH
    config: Mapping[str, Any] = field(default_factory=dict)  # dotted config paths (sidae.config.override)


# The `cpu` budget of 32x32 RGB data sets trains its own network with its own optimizer at its own
# batch: a small batch leaves more of each step to the view pipeline and the optimizer than 256 does.
RGB32_BUDGET = Case(
    "rgb32_cpu_budget_w0.5",
    "cifar10",
    (3, 32, 32),
    0.5,
    batch=CPU_RGB32.batch_size or BATCH,
    config={k: v for k, v in CPU_RGB32.config_values().items() if k.startswith(("model.", "optim.optimizer"))},
)
CASES = {
    case.name: case
    for case in (
        Case("mnist_w0", "mnist", (1, 28, 28), 0.0),
        Case("mnist_w0.5", "mnist", (1, 28, 28), 0.5),
        Case("mnist_w1", "mnist", (1, 28, 28), 1.0),
        Case("rgb32_w0.5", "cifar10", (3, 32, 32), 0.5),
        RGB32_BUDGET,
    )
}


def full_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    cfg: SidAEConfig,
    generator: torch.Generator,
) -> Step:
    """One step of sidae.pretraining._epoch per call."""
    batches = float_batches(images, generator, cfg.optim.batch_size)
    return lambda: train_step(model, optimizer, make_views(next(batches), cfg, generator), cfg)


def run_case(case: Case, args: argparse.Namespace, device: torch.device) -> None:
    cfg = override(
        default_config(case.dataset, w=case.w),
        {**case.config, "optim.batch_size": case.batch, "cpu_bf16": args.cpu_bf16},
    )
    if cfg.model.backbone == "resnet18":
        width = args.resnet_width or (cfg.model.width if device.type == "cuda" else CPU_RESNET_WIDTH)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, width=width))
        emit(f"{case.name}_resnet_width", width)
    data = synthetic_splits(case.dataset, case.shape, 8 * case.batch)
    model = build_model(cfg, data, device)
    optimizer = build_optimizer(model, cfg)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    images = data.pretrain.images.to(device)
    views = make_views(to_float(images[: case.batch], device), cfg, generator)
    views = Views(*(v.contiguous(memory_format=torch.channels_last) for v in views))
    steps = {
        "full": full_step(model, optimizer, images, cfg, generator),
        "bare": lambda: train_step(model, optimizer, views, cfg),
    }
    if args.compile:
        torch.compiler.reset()  # else the previous case's shapes make dynamo recompile with dynamic shapes
        compiled = torch.compile(model)
        steps["compiled"] = full_step(compiled, optimizer, images, cfg, generator)
        start = time.perf_counter()
        steps["compiled"]()  # the cold compile of forward and backward
        compile_seconds = time.perf_counter() - start
    if case.batch != BATCH:
        emit(f"{case.name}_batch_size", case.batch)
    per_repeat = repeat_rates(steps, device, args.repeats, args.repeat_seconds, images_per_step=case.batch)
    rates = medians(per_repeat)
    emit(f"{case.name}_images_per_second", rates["full"])
    emit(f"{case.name}_bare_images_per_second", rates["bare"])
    emit(f"{case.name}_ratio_to_bare_model", paired_ratio(per_repeat["full"], per_repeat["bare"]))
    if args.compile:
        saved_per_image = 1 / rates["full"] - 1 / rates["compiled"]
        emit(f"{case.name}_compiled_images_per_second", rates["compiled"])
        emit(f"{case.name}_compile_speedup", rates["compiled"] / rates["full"])
        emit(f"{case.name}_compile_seconds", compile_seconds)
        emit(
            f"{case.name}_compile_break_even_images",
            compile_seconds / saved_per_image if saved_per_image > 0 else math.inf,
        )


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument(
        "--resnet-width",
        type=int,
        default=None,
        help=f"ResNet-18 width for rgb32 (default: 64 on cuda, {CPU_RESNET_WIDTH} on cpu)",
    )
    p.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    p.add_argument("--cpu-bf16", action="store_true", help="pre-train under bfloat16 autocast on the CPU (cpu_bf16)")
    args = p.parse_args()
    device = setup(args)
    emit("batch_size", BATCH)
    emit("cpu_bf16", args.cpu_bf16)
    for name in args.cases:
        run_case(CASES[name], args, device)


if __name__ == "__main__":
    main()
