"""Self-supervised pre-training of SidAE: the loop, its per-epoch monitor and checkpoints.

The caller passes a callback that receives each epoch's metrics; it may raise to stop the run
(the studies layer uses this for pruning), after the epoch's checkpoint is on disk.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from tqdm import tqdm

from sidae import checkpoint
from sidae.augment import augment_views
from sidae.config import SidAEConfig
from sidae.config_checks import ConfigError
from sidae.data import DataSplits
from sidae.errors import UserError
from sidae.evaluate import collapse_std, extract_features, knn_accuracy, knn_bank_index
from sidae.image_set import to_float
from sidae.losses import LossParts, balanced_total, sidae_loss
from sidae.model import SidAE
from sidae.noise import add_noise
from sidae.timing import PhaseTimer, say

EpochCallback = Callable[[dict[str, float]], None]


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite; usually the learning rate is too high."""


@dataclass
class PretrainResult:
    model: SidAE
    history: list[dict[str, float]]
    device: torch.device
    phase_seconds: dict[str, float] = field(default_factory=dict)  # this run's time per phase (sidae.timing)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


def cpu_has_amx() -> bool:
    """Whether this machine's CPU has AMX bfloat16 tiles, where cpu_bf16 pays (read from Linux's
    CPU flags; False where there are none to read)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def build_model(cfg: SidAEConfig, data: DataSplits, device: torch.device) -> SidAE:
    torch.manual_seed(cfg.seed)
    model = SidAE(cfg.model, data.image_shape, data.mean, data.std).to(device)
    # NHWC convolutions are faster on both CUDA tensor cores and oneDNN CPU kernels.
    return model.to(memory_format=torch.channels_last)


def build_optimizer(model: SidAE, cfg: SidAEConfig) -> torch.optim.Optimizer:
    """SGD (or AdamW) over all parameters; the predictor is tagged so the schedule can keep its
    lr fixed (SimSiam's fix_pred_lr). Modules that w switches off get no gradients and stay put."""
    predictor = list(model.predictor.parameters())
    ids = {id(p) for p in predictor}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": rest, "fixed_lr": False}, {"params": predictor, "fixed_lr": cfg.optim.fix_pred_lr}]
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay)


def set_cosine_lr(optimizer: torch.optim.Optimizer, base_lr: float, progress: float) -> float:
    lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    for group in optimizer.param_groups:
        group["lr"] = base_lr if group["fixed_lr"] else lr
    return lr


class Views(NamedTuple):
    """One batch's two augmented clean views (the reconstruction targets) and the noised copies
    the encoder sees; at w = 1 (unless noise_at_w1) the noised copies are the clean views."""

    x1: Tensor
    x2: Tensor
    x1_noised: Tensor
    x2_noised: Tensor


def make_views(x: Tensor, cfg: SidAEConfig, generator: torch.Generator) -> Views:
    """Two independently augmented clean views of the clean float batch x and their noised copies."""
    # in the model's layout once (train_step): the clean views are its targets and, unnoised, its inputs
    x1, x2 = (view.contiguous(memory_format=torch.channels_last) for view in augment_views(x, cfg.augment, generator))
    if not cfg.noised:
        return Views(x1, x2, x1, x2)
    return Views(x1, x2, add_noise(x1, cfg.noise, generator), add_noise(x2, cfg.noise, generator))


class LossScales:
    """Running (exponential moving average) sizes of the two loss terms, for normalised
    weighting; the first batch's sizes seed it."""

    MOMENTUM = 0.99

    def __init__(self, values: Tensor | None = None) -> None:
        self.values = values

    def update(self, parts: LossParts) -> Tensor:
        current = torch.stack([parts.siam.detach() + 1, parts.rec.detach()]).float().clamp(min=1e-8)
        self.values = current if self.values is None else self.MOMENTUM * self.values + (1 - self.MOMENTUM) * current
        return self.values


def train_step(
    model: SidAE, optimizer: torch.optim.Optimizer, views: Views, cfg: SidAEConfig, scales: LossScales | None = None
) -> LossParts:
    """One optimizer step on a batch's views (see make_views); returns the (detached) loss parts."""
    # channels_last, as the model's activations: the reconstruction loss then compares tensors of
    # one layout (the same bits as against NCHW targets, and faster); make_views' clean views are
    # in it already, so only the noised ones are copied
    x1, x2, x1_noised, x2_noised = (view.contiguous(memory_format=torch.channels_last) for view in views)
    bf16 = x1.is_cuda or cfg.cpu_bf16
    autocast = torch.autocast(x1.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    with autocast:
        out = model(x1_noised, x2_noised, cfg.w, (x1, x2) if cfg.siamese_clean else None)
        parts = sidae_loss(cfg.w, out, x1, x2)
        total = parts.total if scales is None else balanced_total(cfg.w, parts, scales.update(parts))
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return parts.detached()


def monitor(model: SidAE, data: DataSplits, bank_index: Tensor, k: int, device: torch.device) -> dict[str, float]:
    """Validation kNN accuracy against a fixed bank of labelled training images, and the
    collapse indicator on the validation features."""
    bank = data.train.subset(bank_index)
    bank_x = extract_features(model.encoder, bank.images, device)
    val_x = extract_features(model.encoder, data.val.images, device)
    knn = knn_accuracy(bank_x, bank.labels.to(device), val_x, data.val.labels.to(device), k=k)
    return {"knn_acc": knn, "collapse_std": collapse_std(val_x)}


def epoch_batches(images: int, batch_size: int) -> tuple[int, int]:
    """An epoch's batch size and optimizer steps on `images` images: the ragged last batch is
    dropped, since BatchNorm needs full ones."""
    batch = min(batch_size, images)
    return batch, max(1, images // batch)


def _epoch(
    model: SidAE,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    cfg: SidAEConfig,
    generator: torch.Generator,
    scales: LossScales | None,
    epoch: int,
    progress: bool,
) -> dict[str, float]:
    batch, steps = epoch_batches(len(images), cfg.optim.batch_size)
    order = torch.randperm(len(images), generator=generator, device=generator.device).to(images.device)
    sums = torch.zeros(3, device=images.device)
    lr = 0.0
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", leave=False, disable=not progress)
    for step in bar:
        lr = set_cosine_lr(optimizer, cfg.optim.lr, (epoch * steps + step) / (cfg.optim.epochs * steps))
        x = to_float(images[order[step * batch : (step + 1) * batch]], images.device)
        parts = train_step(model, optimizer, make_views(x, cfg, generator), cfg, scales)
        sums += torch.stack([parts.total.float(), parts.siam.float(), parts.rec.float()])
    loss, siam, rec = (sums / steps).tolist()
    if not math.isfinite(loss):
        raise TrainingDiverged(f"loss is {loss} in epoch {epoch + 1} (lr {cfg.optim.lr:g}); lower the learning rate")
    return {"loss": loss, "loss_siam": siam, "loss_rec": rec, "lr": lr, "images": steps * batch}


@dataclass
class _TrainState:
    """Everything a checkpoint must hold to continue a run exactly where it stopped."""

    model: SidAE
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    scales: LossScales | None
    history: list[dict[str, float]]

    def to_dict(self, cfg: SidAEConfig) -> dict:
        return {
            "config": cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "history": self.history,
            "loss_scales": None if self.scales is None else self.scales.values,
        }

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.history = list(state["history"])
        if self.scales is not None:
            self.scales.values = state["loss_scales"]


def pretrain(
    cfg: SidAEConfig,
    data: DataSplits,
    *,
    callback: EpochCallback | None = None,
    checkpoint_path: Path | None = None,
    progress: bool = True,
) -> PretrainResult:
    """Pre-train for cfg.optim.epochs, resuming from checkpoint_path if it holds a checkpoint
    of this same configuration.

    Args:
        cfg: the configuration (w, noise, augmentations, optimiser; eval.knn_bank_size and knn_k for the monitor).
        data: the splits (sidae.data.load_splits): pre-training images, and the labelled pool and
            validation split the per-epoch kNN monitor reads.
        callback: receives each epoch's metrics after its checkpoint is written; it may raise to stop the run.
        checkpoint_path: saved after every epoch; one of another configuration is a ConfigError.
        progress: a bar per epoch and a line after its monitor; without it, silent.

    Returns:
        A PretrainResult: the model, one metrics dict per epoch (resumed ones included), the device
        and this call's seconds per phase. TrainingDiverged if the loss stops being finite.

    One epoch on 512 MNIST images; a second call on its checkpoint finds nothing left to train:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from sidae.config import default_config, override
    >>> from sidae.data import load_splits
    >>> cfg = override(default_config("mnist", device="cpu"), {
    ...     "optim.epochs": 1, "data.train_limit": 512, "data.val_size": 500, "data.download": False,
    ...     "eval.knn_bank_size": 500})
    >>> data, seen = load_splits(cfg.data), []
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     trained = pretrain(cfg, data, callback=seen.append, checkpoint_path=Path(tmp) / "ckpt.pt", progress=False)
    ...     resumed = pretrain(cfg, data, checkpoint_path=Path(tmp) / "ckpt.pt", progress=False)
    >>> [metrics["epoch"] for metrics in trained.history], seen == trained.history, trained.device
    ([1], True, device(type='cpu'))
    >>> 0.0 <= trained.history[0]["knn_acc"] <= 1.0
    True
    >>> sorted(resumed.phase_seconds), resumed.history == trained.history
    (['model_setup'], True)
    """
    timer = PhaseTimer()
    with timer("model_setup"):
        device = resolve_device(cfg.device)
        model = build_model(cfg, data, device)
        run = _TrainState(
            model,
            build_optimizer(model, cfg),
            torch.Generator(device).manual_seed(cfg.seed),
            LossScales() if cfg.normalize_losses else None,
            [],
        )
        if checkpoint_path is not None and checkpoint_path.exists():
            run.load(_checkpoint_of(checkpoint_path, cfg, device))
        images = data.pretrain.images.to(device)  # uint8 in device memory: batches never cross the bus
        bank_index = knn_bank_index(len(data.train), cfg.eval.knn_bank_size, cfg.seed)
    for epoch in range(len(run.history), cfg.optim.epochs):
        start = time.perf_counter()
        metrics = _epoch(model, run.optimizer, images, cfg, run.generator, run.scales, epoch, progress)
        train_seconds = time.perf_counter() - start
        timer.add("pretrain", train_seconds)
        label = f"epoch {epoch + 1}/{cfg.optim.epochs}"
        with tqdm(total=0, bar_format="{desc}", desc=f"{label}: kNN monitor", leave=False, disable=not progress):
            metrics.update(monitor(model, data, bank_index, cfg.eval.knn_k, device))
        monitor_seconds = time.perf_counter() - start - train_seconds
        timer.add("monitor", monitor_seconds)
        metrics.update(
            epoch=epoch + 1, train_seconds=train_seconds, images_per_second=metrics.pop("images") / train_seconds
        )
        say(
            progress,
            f"{label}: loss {metrics['loss']:.4f}, validation kNN {metrics['knn_acc']:.4f} "
            f"({train_seconds:.0f} s training, {monitor_seconds:.0f} s kNN monitor)",
        )
        run.history.append(metrics)
        if checkpoint_path is not None:
            with timer("checkpoint"):
                checkpoint.save_atomic(run.to_dict(cfg), checkpoint_path)
        if callback is not None:
            with timer("report"):
                callback(dict(metrics))
    return PretrainResult(model, run.history, device, timer.seconds)


def _checkpoint_of(path: Path, cfg: SidAEConfig, device: torch.device) -> dict:
    state = checkpoint.load(path, device)
    # through from_dict, so that a field added since the checkpoint was written reads as its default
    written = SidAEConfig.from_dict(state["config"]).to_dict()
    if _pretraining_fields(written) != _pretraining_fields(cfg.to_dict()):
        raise ConfigError(f"checkpoint {path} was written by a different configuration; use another --out or delete it")
    return state


def _pretraining_fields(config: dict) -> dict:
    """The fields that decide what pre-training computes. Epochs may grow on resume (continue a
    run for longer); where the data lives, the device and the evaluation settings may change."""
    fields = {k: v for k, v in config.items() if k not in ("eval", "device")}
    fields["data"] = {k: v for k, v in config["data"].items() if k not in ("data_dir", "download", "verify")}
    fields["optim"] = {k: v for k, v in config["optim"].items() if k != "epochs"}
    return fields
