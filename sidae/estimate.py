"""What a run will cost, said before it starts: its kinds of step timed on this machine.

Most of a run's time is work whose amount its configuration fixes: pre-training steps, images
encoded (the per-epoch kNN monitor, the probes' features, the test figures), the linear
probes' logistic fits and fine-tuning steps. `step_seconds` times each kind on the run's own
model and data, after a warm-up call (the first calls allocate memory and pick kernels);
`run_seconds` multiplies. A logistic fit costs a fixed part and a part per image (FitSeconds),
timed on the untrained encoder's features of two numbers of images: per image, a small fit
costs several times a large one, so one size alone misjudges the large fits (L-BFGS's
iterations also vary with the features). Process starts and data loading are not counted
(benchmarks/README.md, "Expected and measured times").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from sidae.config import SidAEConfig
from sidae.controls import pixel_features
from sidae.data import DataSplits
from sidae.evaluate import FineTuning, extract_features, fit_logistic, probe_fit_sizes, standardisation
from sidae.image_set import to_float
from sidae.pretraining import build_model, build_optimizer, epoch_batches, make_views, resolve_device, train_step

ENCODE_SAMPLE = 256  # images encoded to time encoding
# The two timed logistic fits: FIT_SMALL images, and as many as make FIT_VALUES feature values
# (4,096 images of the cpu budget's 256 features; fewer of wide ones such as raw pixels, whose
# fits would otherwise take minutes). On MNIST's untrained encoder a fit of 256 took 441 us an
# image, one of 4,096 146 and one of 55,000 136: a line through the two predicts the large fits
# within a fifth, where 256's cost per image over-counted a cpu-budget trial's probes 3 times.
FIT_SMALL, FIT_VALUES = 256, 4096 * 256
FINETUNE_POOL = 512  # labelled images the timed fine-tuning steps draw from (the cost is per batch)


@dataclass(frozen=True)
class FitSeconds:
    """Seconds of one logistic fit: `call` for any fit, plus `image` per image it fits."""

    call: float
    image: float

    def of(self, sizes: Sequence[int]) -> float:
        """Seconds of fits of these numbers of images."""
        return sum(self.call + self.image * n for n in sizes)


@dataclass(frozen=True)
class StepSeconds:
    """Seconds of one pre-training step, one image encoded, a logistic fit on the encoder's
    features and on raw pixels (the control's, C*H*W wide), and one fine-tuning step."""

    pretrain: float
    encode: float
    fit: FitSeconds
    fit_pixels: FitSeconds
    finetune: float


def _timed(call: Callable[[], object], device: torch.device, repeats: int = 2, warm_up: bool = True) -> float:
    """Seconds of one call, after a warm-up unless one ran already; a GPU's queued kernels are
    waited for."""

    def wait() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if warm_up:
        call()
    wait()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    wait()
    return (time.perf_counter() - start) / repeats


def step_seconds(cfg: SidAEConfig, data: DataSplits, fits: tuple[FitSeconds, FitSeconds] | None = None) -> StepSeconds:
    """Each kind of step of a run of cfg on data, timed on this machine (a few seconds). `fits`:
    the logistic fits (features, pixels) already timed for another w of the same data and
    network, reused: neither the encoder's width nor the pixels change with w."""
    device = resolve_device(cfg.device)
    model = build_model(cfg, data, device)
    optimizer = build_optimizer(model, cfg)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    batch, _ = epoch_batches(len(data.pretrain), cfg.optim.batch_size)
    x = to_float(data.pretrain.images[:batch], device)
    pretrain = _timed(lambda: train_step(model, optimizer, make_views(x, cfg, generator), cfg), device)
    sample = data.val.subset(torch.arange(min(len(data.val), ENCODE_SAMPLE)))
    encode = _timed(lambda: extract_features(model.encoder, sample.images, device), device) / len(sample)
    if fits is None:
        labelled = data.train.subset(torch.arange(min(len(data.train), FIT_VALUES // model.feat_dim)))
        labels = labelled.labels.to(device)
        fits = (
            _fit_seconds(extract_features(model.encoder, labelled.images, device), labels, data, device),
            _fit_seconds(pixel_features(labelled.images, device), labels, data, device),
        )
    finetune = 0.0
    if cfg.eval.finetune:
        pool = data.train.subset(torch.arange(min(len(data.train), FINETUNE_POOL)))
        finetune = _timed(FineTuning(model.encoder, model.feat_dim, pool, data.num_classes, cfg, device).step, device)
    return StepSeconds(pretrain, encode, *fits, finetune)


def _fit_seconds(features: torch.Tensor, labels: torch.Tensor, data: DataSplits, device: torch.device) -> FitSeconds:
    """A fit's cost as a line through fits of the first FIT_SMALL images and of those that make
    FIT_VALUES values, on standardised features as linear_probe fits them (the larger fit's
    kernels are warm from the smaller one's, so it runs once: it takes up to a second)."""
    classes = max(data.num_classes, int(labels.max()) + 1)
    mean, std = standardisation(features)
    x = (features - mean) / std

    def fit(n: int) -> Callable[[], object]:
        return lambda: fit_logistic(x[:n], labels[:n], classes, weight_decay=1e-4)

    n_small = min(len(x), FIT_SMALL)
    n_large = min(len(x), max(n_small, FIT_VALUES // x.shape[1]))
    small = _timed(fit(n_small), device)
    if n_large <= n_small:  # too few labelled images for a second size: all cost per image
        return FitSeconds(0.0, small / n_small)
    large = _timed(fit(n_large), device, repeats=1, warm_up=False)
    image = max(0.0, (large - small) / (n_large - n_small))
    return FitSeconds(max(0.0, small - image * n_small), image)


def evaluation_seconds(cfg: SidAEConfig, data: DataSplits, steps: StepSeconds) -> float:
    """The evaluation of one encoder (sidae.experiment.evaluate): the labelled images some
    probe or the kNN bank uses, the validation and test images encoded, a linear probe per
    label fraction, and fine-tuning."""
    bank = min(cfg.eval.knn_bank_size, len(data.train))
    encoded = min(len(data.train), bank + _labelled(cfg, data)) + len(data.val) + len(data.test)
    seconds = steps.fit.of(_fit_sizes(cfg, data)) if cfg.eval.linear else 0.0
    return seconds + steps.encode * encoded + _finetuning_seconds(cfg, data, steps)


def seed_task_seconds(cfg: SidAEConfig, data: DataSplits, steps: StepSeconds) -> float:
    """A seed's baseline task (studies.service.baseline): the controls when the trials probe
    (sidae.controls: a probe on the untrained encoder's features of the labelled and test
    images, one on their raw pixels, whose wide fits cost the most on RGB data) and the
    supervised baseline when they fine-tune."""
    seconds = 0.0
    if cfg.eval.linear:
        encoded = _labelled(cfg, data) + len(data.test)
        fits = _fit_sizes(cfg, data)
        seconds += steps.fit.of(fits) + steps.fit_pixels.of(fits) + steps.encode * encoded
    return seconds + _finetuning_seconds(cfg, data, steps)


def _labelled(cfg: SidAEConfig, data: DataSplits) -> int:
    """The labelled images some probe uses (at most the pool)."""
    return min(len(data.train), round(sum(cfg.eval.label_fractions) * len(data.train)))


def _fit_sizes(cfg: SidAEConfig, data: DataSplits) -> list[int]:
    """The images of each logistic fit of one set of linear probes."""
    return [n for f in cfg.eval.label_fractions for n in probe_fit_sizes(round(f * len(data.train)))]


def _finetuning_seconds(cfg: SidAEConfig, data: DataSplits, steps: StepSeconds) -> float:
    """Fine-tuning at each label fraction, each fine-tuned model then encoding the test images."""
    if not cfg.eval.finetune:
        return 0.0
    fractions = len(cfg.eval.label_fractions)
    return fractions * (steps.finetune * cfg.eval.finetune_steps + steps.encode * len(data.test))


def run_seconds(cfg: SidAEConfig, data: DataSplits, steps: StepSeconds) -> float:
    """One run (sidae.experiment.run): pre-training, the per-epoch kNN monitor and evaluation."""
    _, per_epoch = epoch_batches(len(data.pretrain), cfg.optim.batch_size)
    monitored = min(cfg.eval.knn_bank_size, len(data.train)) + len(data.val)
    pretraining = cfg.optim.epochs * (per_epoch * steps.pretrain + monitored * steps.encode)
    return pretraining + evaluation_seconds(cfg, data, steps)
