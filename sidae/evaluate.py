"""Downstream evaluation of an encoder: kNN and linear probe on frozen features, fine-tuning.

Label fractions are stratified, seeded subsets of the labelled training pool, so 1 % of MNIST
is 1 % of every digit and the same seed picks the same images.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidae.augment import augment
from sidae.config import AugmentConfig, SidAEConfig
from sidae.config_checks import ConfigError
from sidae.data import DataSplits
from sidae.image_set import ImageSet, to_float

_FEATURE_BATCH = 1024
_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)  # linear-probe L2 grid, chosen on held-out labels
_SELECTION_SIZE = 10_000  # labels used to choose the L2 strength; more changes the choice little


@torch.no_grad()
def extract_features(encoder: nn.Module, images: Tensor, device: torch.device) -> Tensor:
    """Encoder outputs (N, D) for uint8 images, in eval mode, computed once per evaluation."""
    was_training = encoder.training
    encoder.eval()
    feats = [
        encoder(to_float(images[i : i + _FEATURE_BATCH], device)).float() for i in range(0, len(images), _FEATURE_BATCH)
    ]
    encoder.train(was_training)
    return torch.cat(feats)


def collapse_std(features: Tensor) -> float:
    """Std of l2-normalised features over the batch, averaged over dimensions (SimSiam, Sec. 4.1):
    ~1/sqrt(D) for well-spread features, 0 for a collapsed (constant) representation."""
    return F.normalize(features, dim=1).std(dim=0).mean().item()


def label_subset(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """Indices of a stratified `fraction` of the labelled samples: round(fraction * n_c) of each
    class c (at least one), chosen by a seeded permutation."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"label fraction must be in (0, 1], got {fraction}")
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for c in torch.unique(labels[labels >= 0]).tolist():
        members = torch.nonzero(labels == c).flatten()
        take = max(1, round(fraction * len(members)))
        picked.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.sort(torch.cat(picked)).values


def describe_splits(data: DataSplits, fractions: tuple[float, ...]) -> str:
    """One line with the split sizes and the labelled images each label fraction uses, which
    every run prints: on a small folder it shows what is left for pre-training and the probes."""
    used = ", ".join(
        f"{fraction * 100:g} % = {len(label_subset(data.train.labels, fraction, 0)):,}" for fraction in fractions
    )
    return (
        f"{data.name}: {len(data.pretrain):,} pre-training, {len(data.train):,} labelled pool, "
        f"{len(data.val):,} validation, {len(data.test):,} test images; labelled images per fraction: {used}"
    )


def knn_bank_index(pool_size: int, bank_size: int, seed: int) -> Tensor:
    """The fixed, seeded subset of labelled training images that kNN classification uses as its
    memory bank (per-epoch monitor and final test figure alike)."""
    return torch.randperm(pool_size, generator=torch.Generator().manual_seed(seed))[:bank_size]


def knn_accuracy(
    bank: Tensor, bank_labels: Tensor, query: Tensor, query_labels: Tensor, k: int = 20, temperature: float = 0.1
) -> float:
    """Weighted kNN on cosine similarity (Wu et al., 2018): each of the k nearest neighbours
    votes for its class with weight exp(sim / T)."""
    bank, query = F.normalize(bank, dim=1), F.normalize(query, dim=1)
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    k = min(k, len(bank))
    correct = 0
    for i in range(0, len(query), _FEATURE_BATCH):
        sim, idx = (query[i : i + _FEATURE_BATCH] @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes, device=sim.device)
        votes.scatter_add_(1, bank_labels[idx], (sim / temperature).exp())
        correct += (votes.argmax(1) == query_labels[i : i + _FEATURE_BATCH]).sum().item()
    return correct / len(query)


def fit_logistic(x: Tensor, y: Tensor, num_classes: int, weight_decay: float) -> nn.Linear:
    """Multinomial logistic regression by full-batch L-BFGS (convex: a few dozen iterations)."""
    head = nn.Linear(x.shape[1], num_classes).to(x.device)
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1, max_iter=200, history_size=10, line_search_fn="strong_wolfe", tolerance_grad=1e-6
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(head(x), y) + weight_decay * head.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head


def _accuracy(head: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (head(x).argmax(1) == y).float().mean().item()


def _choose_weight_decay(x: Tensor, y: Tensor, num_classes: int, seed: int) -> float:
    """The L2 strength from the grid that scores best on a stratified held-out 20 % of (at most
    _SELECTION_SIZE of) the labels; ties go to the stronger penalty."""
    if len(y) > _SELECTION_SIZE:
        pick = label_subset(y, _SELECTION_SIZE / len(y), seed)
        x, y = x[pick], y[pick]
    held = label_subset(y, 0.2, seed)
    if len(held) == len(y) or len(torch.unique(y)) < 2:
        return _WEIGHT_DECAYS[len(_WEIGHT_DECAYS) // 2]  # too few labels to hold any out
    fit = torch.ones(len(y), dtype=torch.bool, device=y.device)
    fit[held] = False
    scores = [_accuracy(fit_logistic(x[fit], y[fit], num_classes, wd), x[held], y[held]) for wd in _WEIGHT_DECAYS]
    return _WEIGHT_DECAYS[max(range(len(scores)), key=lambda i: (scores[i], i))]


def probe_fit_sizes(labels: int) -> list[int]:
    """The training-set sizes of the logistic fits linear_probe makes on `labels` labels (one
    per L2 strength on the labels left after holding out 20 % of at most _SELECTION_SIZE, then
    the refit on all): what its cost scales with (sidae.estimate)."""
    selection = min(labels, _SELECTION_SIZE)
    return [round(0.8 * selection)] * len(_WEIGHT_DECAYS) + [labels]


Targets = Mapping[str, tuple[Tensor, Tensor]]  # name -> (features, labels) to score a probe on


def standardisation(x: Tensor) -> tuple[Tensor, Tensor]:
    """The per-feature mean and standard deviation (floored: constant features stay finite) that
    a linear probe standardises its features with, fitted on its training features."""
    return x.mean(0), x.std(0).clamp(min=1e-6)


def linear_probe(train_x: Tensor, train_y: Tensor, targets: Targets, seed: int) -> dict[str, float]:
    """Accuracy on each target of one logistic-regression probe on standardised frozen features.

    The L2 strength is chosen on held-out training labels, then the probe is refitted on all of
    them, so no target label ever influences it."""
    mean, std = standardisation(train_x)
    train_x = (train_x - mean) / std
    num_classes = int(max(train_y.max(), *(y.max() for _, y in targets.values()))) + 1
    weight_decay = _choose_weight_decay(train_x, train_y, num_classes, seed)
    head = fit_logistic(train_x, train_y, num_classes, weight_decay)
    return {name: _accuracy(head, (x - mean) / std, y) for name, (x, y) in targets.items()}


def linear_probes(
    train_x: Tensor, train_y: Tensor, targets: Targets, fractions: tuple[float, ...], seed: int
) -> dict[str, dict[str, float]]:
    """target -> label fraction (keyed like "0.01") -> accuracy; one fit per fraction."""
    scores: dict[str, dict[str, float]] = {name: {} for name in targets}
    for fraction in fractions:
        idx = label_subset(train_y, fraction, seed)
        for name, accuracy in linear_probe(train_x[idx], train_y[idx], targets, seed).items():
            scores[name][fraction_key(fraction)] = accuracy
    return scores


def fraction_key(fraction: float) -> str:
    return f"{fraction:g}"


def finetune_augmentation(cfg: SidAEConfig) -> AugmentConfig:
    """The augmentation of fine-tuning (cfg.eval.finetune_augment): the pre-training one, or
    only its horizontal flips (no crop, affine warp or colour change)."""
    if cfg.eval.finetune_augment == "pretrain":
        return cfg.augment
    return AugmentConfig(crop_scale_min=1.0, flip_prob=cfg.augment.flip_prob, jitter=0.0, grayscale_prob=0.0)


class FineTuning:
    """A copy of the encoder plus a linear head, trained on a labelled set one SGD step at a
    time (one view per image, augmented as finetune_augmentation says, cosine decay over
    cfg.eval.finetune_steps). A freshly initialised encoder gives the supervised baseline."""

    def __init__(
        self,
        encoder: nn.Module,
        feat_dim: int,
        train: ImageSet,
        num_classes: int,
        cfg: SidAEConfig,
        device: torch.device,
        batch_size: int = 128,
    ) -> None:
        steps = cfg.eval.finetune_steps
        torch.manual_seed(cfg.seed)
        self.generator = torch.Generator(device).manual_seed(cfg.seed)
        self.model = nn.Sequential(copy.deepcopy(encoder), nn.Linear(feat_dim, num_classes)).to(device).train()
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=cfg.eval.finetune_lr, momentum=0.9, weight_decay=5e-4, nesterov=True
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))
        )
        self.batch_size = max(2, min(batch_size, len(train)))  # BatchNorm needs two samples
        self.train, self.labels, self.device = train, train.labels.to(device), device
        self.views = finetune_augmentation(cfg)

    def step(self) -> None:
        idx = torch.randint(len(self.train), (self.batch_size,), generator=self.generator, device=self.device)
        x = augment(
            to_float(self.train.images[idx.to(self.train.images.device)], self.device), self.views, self.generator
        )
        loss = F.cross_entropy(self.model(x), self.labels[idx])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()

    def accuracy(self, test: ImageSet) -> float:
        feats = extract_features(self.model, test.images, self.device)  # the logits
        return (feats.argmax(1).cpu() == test.labels).float().mean().item()


def finetune(
    encoder: nn.Module,
    feat_dim: int,
    train: ImageSet,
    test: ImageSet,
    num_classes: int,
    cfg: SidAEConfig,
    device: torch.device,
    batch_size: int = 128,
) -> float:
    """Fine-tune (FineTuning) for cfg.eval.finetune_steps; return test accuracy."""
    tuning = FineTuning(encoder, feat_dim, train, num_classes, cfg, device, batch_size)
    for _ in range(cfg.eval.finetune_steps):
        tuning.step()
    return tuning.accuracy(test)
