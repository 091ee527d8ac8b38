"""Typed, frozen configuration for one SidAE pre-training + evaluation run.

Every field a study may search lives here, validated at construction (sidae.config_checks) so
a bad value fails with one clear line before any data is read. Details the paper leaves open
take the values SimSiam (Chen & He, 2021) and standard denoising autoencoders use; they are
fields, not constants, so a study can vary them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidae.config_checks import ConfigError, check, check_probability, typed

# One range for every seed: the narrowest of the stack's, numpy's RandomState under a study's
# Optuna sampler (torch's generators take 64 bits).
MAX_SEED = 2**32 - 1

# cifar10-jpeg: the image-folder copy of CIFAR-10 in <data_dir>/CIFAR10-JPEG (lossy JPEG: report
# its numbers as "CIFAR-10 (JPEG copy)"); read like imagefolder.
DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar10-jpeg", "stl10", "imagefolder")
# How reports and notes name a data set's numbers.
DATASET_TITLES = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar10-jpeg": "CIFAR-10 (JPEG copy)",
    "stl10": "STL-10",
    "imagefolder": "an image folder",
}
BACKBONES = ("convnet", "resnet18")
NOISE_KINDS = ("gaussian", "mask", "salt-pepper")
# What the DAE's decoder reconstructs from: the pooled vector, or the map before pooling.
DECODER_INPUTS = ("pooled", "feature_map")
# A ResNet-18's first shortcut is a 1x1 stride-2 convolution with `width` input channels. With
# fewer than 8, PyTorch 2.14's CPU kernel for its weight gradient (oneDNN, jit:avx2, the
# channels_last layout training uses) writes outside its buffers: "double free or corruption"
# or a segmentation fault with one thread, a hang in its barrier with two (a reproduction is in
# docs/architecture.md). Refused on every device, so that a configuration means the same
# everywhere; no useful ResNet-18 is that narrow.
MIN_RESNET_WIDTH = 8
OPTIMIZERS = ("sgd", "adamw")
# The devices the trainer runs on (sidae.pretraining.resolve_device, sidae.config.uses_gpu):
# anything else would be a torch error in every trial, after the data is read.
DEVICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:(0|[1-9][0-9]*))?")
# What fine-tuning augments with: the pre-training views, or only the data set's flips.
FINETUNE_AUGMENTS = ("pretrain", "flip")


@dataclass(frozen=True)
class DataConfig:
    """Which images to read and how to split them.

    `val_size` images are carved out of the labelled training set (seeded) for monitoring and
    model selection (None: a tenth of it, at most 5,000; see sidae.data.validation_size); the
    test set is only used for final numbers.
    """

    dataset: str = "mnist"
    data_dir: str | None = None  # None: $SIDAE_DATA_DIR, else ./data
    train_limit: int | None = None  # pre-train on a seeded subset of this many images
    val_size: int | None = None
    image_size: int = 32  # image folders only; the built-in data sets have fixed sizes
    download: bool = True  # try torchvision's download when the files are missing
    verify: bool = True  # check torchvision's published MD5 sums (CIFAR-10, STL-10)

    def __post_init__(self) -> None:
        check(self.dataset in DATASETS, f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        check(self.train_limit is None or self.train_limit > 0, f"train_limit must be positive, got {self.train_limit}")
        check(self.val_size is None or self.val_size > 0, f"val_size must be positive, got {self.val_size}")
        check(self.image_size >= 8, f"image_size must be at least 8, got {self.image_size}")


@dataclass(frozen=True)
class ModelConfig:
    """Encoder, SimSiam heads and decoder sizes.

    convnet: a 4-layer conv net for 28x28 grayscale; resnet18: ResNet-18 with a 3x3 stem and no
    max-pool, as used for CIFAR-sized inputs. `width` is the first stage's channel count; the
    stages double it. Projector/predictor follow SimSiam: a 3-layer MLP with BN, and a
    bottleneck MLP of width `pred_dim`.

    `decoder_input`: "pooled" (default), the decoder reconstructs from the pooled 8 * width
    vector, the encoding the probes and the Siamese branch read: a narrow bottleneck (128 numbers
    for the CPU's ResNet-18), what a DAE whose code is the representation does. "feature_map":
    from the last feature map before pooling (8 * width channels at 1/8 of the side: 16 times
    the numbers at 32x32), the usual convolutional DAE; the pooled vector is then not trained to
    hold everything the decoder needs. The paper does not say which (docs/method.md).
    """

    backbone: str = "convnet"
    width: int = 32
    proj_dim: int = 512
    pred_dim: int = 128
    decoder_width: int = 32
    decoder_input: str = "pooled"

    def __post_init__(self) -> None:
        check(self.backbone in BACKBONES, f"unknown backbone {self.backbone!r}; choose from {', '.join(BACKBONES)}")
        check(
            self.decoder_input in DECODER_INPUTS,
            f"unknown decoder_input {self.decoder_input!r}; choose from {', '.join(DECODER_INPUTS)}",
        )
        for name in ("width", "proj_dim", "pred_dim", "decoder_width"):
            value = getattr(self, name)
            check(value > 0, f"{name} must be positive, got {value}")
        check(
            self.backbone != "resnet18" or self.width >= MIN_RESNET_WIDTH,
            f"a resnet18's width must be at least {MIN_RESNET_WIDTH}, got {self.width} (narrower, PyTorch's"
            " CPU convolution corrupts memory in training: docs/architecture.md)",
        )


@dataclass(frozen=True)
class NoiseConfig:
    """Corruption of each view before the encoder (the denoising part of SidAE).

    gaussian: add N(0, level^2) to pixels in [0, 1]; mask: zero a `level` fraction of pixels;
    salt-pepper: set a `level` fraction of pixels to 0 or 1. level 0 means no corruption.
    """

    kind: str = "gaussian"
    level: float = 0.3

    def __post_init__(self) -> None:
        check(self.kind in NOISE_KINDS, f"unknown noise kind {self.kind!r}; choose from {', '.join(NOISE_KINDS)}")
        check(math.isfinite(self.level) and self.level >= 0, f"noise level must be >= 0, got {self.level}")
        if self.kind != "gaussian":
            check(self.level <= 1.0, f"{self.kind} noise level is a fraction of pixels in [0, 1], got {self.level}")


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the per-sample view augmentations (each 0 switches that one off).

    crop_scale_min: lower bound of RandomResizedCrop's area scale (1 = no crop);
    jitter: colour-jitter strength s (brightness, contrast, saturation 0.8 s, hue 0.2 s,
    applied with probability 0.8, as in SimCLR/SimSiam); rotation in degrees and translate as a
    fraction of the image side are the affine augmentations suited to digits.
    """

    crop_scale_min: float = 0.2
    flip_prob: float = 0.5
    jitter: float = 0.5
    grayscale_prob: float = 0.2
    rotation: float = 0.0
    translate: float = 0.0

    def __post_init__(self) -> None:
        check(0.0 < self.crop_scale_min <= 1.0, f"crop_scale_min must be in (0, 1], got {self.crop_scale_min}")
        check_probability("flip_prob", self.flip_prob)
        check_probability("grayscale_prob", self.grayscale_prob)
        check(0.0 <= self.jitter <= 1.0, f"jitter strength must be in [0, 1], got {self.jitter}")
        check(0.0 <= self.rotation <= 180.0, f"rotation must be in [0, 180] degrees, got {self.rotation}")
        check(0.0 <= self.translate <= 0.5, f"translate must be in [0, 0.5], got {self.translate}")


@dataclass(frozen=True)
class OptimConfig:
    """SimSiam's recipe: SGD momentum 0.9, lr = base_lr * batch / 256, cosine decay, predictor
    at a fixed lr (`fix_pred_lr`).

    `optimizer="adamw"` (same schedule; base_lr around 1e-3) is for short budgets: the
    reconstruction MSE's gradients are so small that SGD at SimSiam's lr barely trains the
    decoder in a few epochs, which makes the DAE side of a w-sweep look worse than it is.
    """

    optimizer: str = "sgd"
    epochs: int = 10
    batch_size: int = 256
    base_lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    fix_pred_lr: bool = True

    @property
    def lr(self) -> float:
        return self.base_lr * self.batch_size / 256

    def __post_init__(self) -> None:
        check(
            self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"
        )
        check(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        check(self.batch_size >= 2, f"batch_size must be at least 2 (BatchNorm), got {self.batch_size}")
        check(math.isfinite(self.base_lr) and self.base_lr > 0, f"base_lr must be positive, got {self.base_lr}")
        check(0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1), got {self.momentum}")
        check(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            f"weight_decay must be finite and >= 0, got {self.weight_decay}",
        )


@dataclass(frozen=True)
class EvalConfig:
    """Downstream evaluation on frozen (linear, kNN) and fine-tuned features.

    Label fractions are of the labelled training set, drawn stratified and seeded.
    """

    label_fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    linear: bool = True
    finetune: bool = True
    finetune_steps: int = 300
    finetune_lr: float = 0.05
    # "pretrain" keeps fine-tuning and the supervised baseline on one protocol with pre-training;
    # "flip" is lighter: better with many labels and few steps, worse with few labels (it overfits).
    finetune_augment: str = "pretrain"
    knn_k: int = 20
    knn_bank_size: int = 10000  # training images in the per-epoch kNN monitor's memory bank
    # Frozen-feature evaluations (linear, kNN, the untrained-encoder control) with BN statistics
    # recomputed on clean training images (sidae.batchnorm), so that an encoder trained on noised
    # views is not probed with noisy-input statistics; measured in docs/method.md.
    recompute_bn: bool = False

    def __post_init__(self) -> None:
        check(len(self.label_fractions) > 0, "at least one label fraction is needed")
        for fraction in self.label_fractions:
            check(0.0 < fraction <= 1.0, f"label fraction must be in (0, 1], got {fraction}")
        check(self.finetune_steps > 0, f"finetune_steps must be positive, got {self.finetune_steps}")
        check(
            math.isfinite(self.finetune_lr) and self.finetune_lr > 0,
            f"finetune_lr must be finite and positive, got {self.finetune_lr}",
        )
        check(
            self.finetune_augment in FINETUNE_AUGMENTS,
            f"unknown finetune_augment {self.finetune_augment!r}; choose from {', '.join(FINETUNE_AUGMENTS)}",
        )
        check(self.knn_k > 0, f"knn_k must be positive, got {self.knn_k}")
        check(self.knn_bank_size > 0, f"knn_bank_size must be positive, got {self.knn_bank_size}")


@dataclass(frozen=True)
class SidAEConfig:
    """L = w * L_siam + (1 - w) * L_rec; w = 1 is SimSiam, w = 0 a denoising autoencoder.

    At w = 1 the views are not corrupted unless `noise_at_w1` (the noise only exists for the
    denoising term), so w = 1 is exactly SimSiam; `noise_at_w1` is the control arm "SimSiam with
    SidAE's noise". `normalize_losses` divides each term by a running estimate of its size (see
    sidae.losses.balanced_total); off by default, so that w keeps the paper's meaning.

    Every field is checked when the config is built, so a config that exists is valid:

    >>> SidAEConfig(w=1.0).w, SidAEConfig().optim.batch_size
    (1.0, 256)
    >>> SidAEConfig(w=1.5)
    Traceback (most recent call last):
    ...
    sidae.config_checks.ConfigError: w must be in [0, 1], got 1.5
    """

    w: float = 0.5
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    noise_at_w1: bool = False
    # For 0 < w < 1: True, the Siamese branch works on the encodings of the noised views, the
    # ones the decoder reads (one encoder pass per view). This is the paper's one Siamese
    # *denoising* network, whose encoder input is the noised view (docs/method.md). False: the
    # Siamese branch encodes the clean views itself, as SimSiam does (two more encoder passes per
    # batch), so a SidAE-SimSiam gap cannot come from the noise. At w = 1 noise_at_w1 decides.
    siamese_noise: bool = True
    normalize_losses: bool = False
    seed: int = 0
    device: str = "auto"  # auto: cuda if available, else cpu
    # Pre-training steps run under bfloat16 autocast on CUDA always, on the CPU only with this:
    # on a CPU with AMX (Intel Sapphire Rapids and later) it about doubles a 1-thread step of the
    # MNIST conv net; a CPU without bfloat16 units emulates it, slower than float32
    # (benchmarks/README.md, "bfloat16 on the CPU").
    cpu_bf16: bool = False

    def __post_init__(self) -> None:
        check(math.isfinite(self.w) and 0.0 <= self.w <= 1.0, f"w must be in [0, 1], got {self.w}")
        check(_DEVICE.fullmatch(self.device) is not None, f"device must be {DEVICES}, got {self.device!r}")
        check(0 <= self.seed <= MAX_SEED, f"seed must be 0 to 2**32 - 1, got {self.seed}")

    @property
    def noised(self) -> bool:
        return self.w < 1.0 or self.noise_at_w1

    @property
    def siamese_clean(self) -> bool:
        """Whether the Siamese branch encodes the clean views apart from the noised ones the
        decoder reads (0 < w < 1 without siamese_noise)."""
        return 0.0 < self.w < 1.0 and not self.siamese_noise

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SidAEConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        nested = {
            "data": DataConfig,
            "model": ModelConfig,
            "noise": NoiseConfig,
            "augment": AugmentConfig,
            "optim": OptimConfig,
            "eval": EvalConfig,
        }
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            check(name in names, f"unknown config field {name!r}")
            if name in nested:
                value = dict(value)
                if name == "eval" and "label_fractions" in value:
                    value["label_fractions"] = tuple(value["label_fractions"])
                value = nested[name](**value)
            kwargs[name] = value
        return cls(**kwargs)


# Per-data-set defaults: the backbone suited to the image size, and SimSiam's CIFAR recipe
# for natural images against small affine jitter for centred grayscale objects (flips and
# colour are meaningless or harmful for digits).
_GRAYSCALE_AUGMENT = AugmentConfig(
    crop_scale_min=0.6, flip_prob=0.0, jitter=0.4, grayscale_prob=0.0, rotation=15.0, translate=0.1
)
_NATURAL_AUGMENT = AugmentConfig(crop_scale_min=0.2, flip_prob=0.5, jitter=0.4, grayscale_prob=0.2)
_SMALL_MODEL = ModelConfig(backbone="convnet", width=32, proj_dim=512, pred_dim=128, decoder_width=32)
_RESNET_MODEL = ModelConfig(backbone="resnet18", width=64, proj_dim=2048, pred_dim=512, decoder_width=64)

DATASET_DEFAULTS: dict[str, tuple[ModelConfig, AugmentConfig]] = {
    "mnist": (_SMALL_MODEL, _GRAYSCALE_AUGMENT),
    "fashion-mnist": (_SMALL_MODEL, dataclasses.replace(_GRAYSCALE_AUGMENT, flip_prob=0.5, rotation=5.0)),
    "cifar10": (_RESNET_MODEL, _NATURAL_AUGMENT),
    "cifar10-jpeg": (_RESNET_MODEL, _NATURAL_AUGMENT),
    "stl10": (_RESNET_MODEL, _NATURAL_AUGMENT),
    "imagefolder": (_RESNET_MODEL, _NATURAL_AUGMENT),
}

# The paper's full-width ResNet-18 is too slow to train on a CPU (benchmarks/README.md, "The
# CPU defaults"): there the ResNet data sets default to CPU_MODEL and fewer fine-tuning steps, so
# a first run takes minutes, not hours. Its numbers are not the paper's; --width 64
# --decoder-width 64 --proj-dim 2048 --pred-dim 512 restore the paper's network.
CPU_MODEL = ModelConfig(backbone="resnet18", width=16, proj_dim=512, pred_dim=128, decoder_width=16)
CPU_FINETUNE_STEPS = 100

# STL-10 has 5,000 labelled training images (and 100,000 unlabelled ones): keep most for the probes.
VAL_SIZES = {"stl10": 1000}


def uses_gpu(device: str) -> bool:
    """Whether `device` ("auto", "cpu", "cuda", "cuda:N") trains on a GPU on this machine."""
    if device == "auto":
        import torch  # only here: the rest of the configuration is plain data

        return torch.cuda.is_available()
    return device.startswith("cuda")


def default_config(dataset: str = "mnist", **overrides: Any) -> SidAEConfig:
    """The recommended configuration for a data set; `overrides` replace top-level fields.

    The device (overrides["device"], default "auto") picks the ResNet data sets' defaults: the
    paper's full-width ResNet-18 on a GPU, the reduced CPU_MODEL on a CPU.

    Args:
        dataset: one of DATASETS (mnist, fashion-mnist, cifar10, cifar10-jpeg, stl10, imagefolder).
        overrides: top-level SidAEConfig fields (w, seed, device, ...); override() sets nested ones.

    Returns:
        A validated, frozen SidAEConfig; ConfigError for an unknown data set or a bad value.

    >>> cfg = default_config("mnist", w=0.25, seed=3)
    >>> cfg.w, cfg.seed, cfg.model.backbone
    (0.25, 3, 'convnet')
    >>> default_config("cifar10", device="cpu").model.width  # the reduced ResNet-18 on a CPU
    16
    >>> default_config("mnist", w=1.5)
    Traceback (most recent call last):
    sidae.config_checks.ConfigError: w must be in [0, 1], got 1.5
    """
    check(dataset in DATASETS, f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    model, augment = DATASET_DEFAULTS[dataset]
    evaluation = EvalConfig()
    if model.backbone == "resnet18" and not uses_gpu(overrides.get("device", "auto")):
        model, evaluation = CPU_MODEL, EvalConfig(finetune_steps=CPU_FINETUNE_STEPS)
    data = DataConfig(dataset=dataset, val_size=VAL_SIZES.get(dataset))
    base = SidAEConfig(data=data, model=model, augment=augment, eval=evaluation)
    return dataclasses.replace(base, **overrides)


def override(cfg: SidAEConfig, values: Mapping[str, Any]) -> SidAEConfig:
    """Replace fields by dotted path: {"w": 0.5, "noise.level": 0.3, "optim.epochs": 5}.

    The one way the CLI flags and the studies' parameters reach a config; unknown paths are a
    ConfigError, values are validated by the dataclasses.

    Args:
        cfg: the configuration to start from (it is frozen: a new one is returned).
        values: dotted field paths and their values, of the field's type (ConfigError otherwise).

    Returns:
        A new SidAEConfig with the values set.

    >>> cfg = override(default_config("mnist"), {"w": 0.9, "noise.kind": "mask", "optim.epochs": 5})
    >>> cfg.w, cfg.noise.kind, cfg.optim.epochs
    (0.9, 'mask', 5)
    >>> override(cfg, {"noise.sigma": 0.1})
    Traceback (most recent call last):
    sidae.config_checks.ConfigError: unknown config field 'noise.sigma'
    """
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for path, value in values.items():
        section, _, name = path.rpartition(".")
        target = getattr(cfg, section, None) if section else cfg
        if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
            raise ConfigError(f"unknown config field {path!r}")
        value = typed(path, value, typing.get_type_hints(type(target))[name])
        if section:
            sections.setdefault(section, {})[name] = value
        else:
            top[name] = value
    for section, fields in sections.items():
        top[section] = dataclasses.replace(getattr(cfg, section), **fields)
    return dataclasses.replace(cfg, **top)
