"""Images/s of SidAE's batched view pipeline against the usual per-sample DataLoader recipe.

(a) ours: sidae.pretraining.make_views on batches of 256 sliced from an in-memory uint8 tensor
(uint8 -> float, two views per image with per-sample crop/flip/affine/colour parameters, noise).
(b) SimSiam's usual recipe: a Dataset whose __getitem__ makes two views of one image with
torchvision.transforms.v2 (the same augmentations as the sidae config asks for, then the same
noise), in a DataLoader with 2 workers, batch 256.
(c) kornia.augmentation, batched with per-sample parameters, as an alternative to (a).
Both for MNIST-shaped (real MNIST from $SIDAE_DATA_DIR when present) and 32x32 RGB (synthetic)
input; target: (a) >= 5x (b). Then whole training steps (sidae.pretraining.train_step) on MNIST fed
by (a) against the same steps fed by (b)'s views: speedup_vs_per_sample_loader.
Images/s count input images; each yields two views.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import kornia.augmentation as K
import torch
from common import (
    BATCH,
    emit,
    float_batches,
    medians,
    parser,
    repeat_rates,
    setup,
    synthetic_splits,
)
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from sidae.config import AugmentConfig, DataConfig, SidAEConfig, default_config
from sidae.data import DataSplits, load_splits
from sidae.image_set import DataError
from sidae.noise import add_noise
from sidae.pretraining import Views, build_model, build_optimizer, make_views, train_step

JITTER_PROB = 0.8  # as sidae.augment and SimSiam
WORKERS = 2
IN_FLIGHT = 2 * WORKERS  # batches a DataLoader prefetches (prefetch_factor 2 per worker)


def per_sample_transform(aug: AugmentConfig, size: int, channels: int) -> v2.Compose:
    """torchvision v2 transforms for one image, with the strengths of an AugmentConfig."""
    s = 0.8 * aug.jitter
    colour = {"saturation": s, "hue": 0.2 * aug.jitter} if channels == 3 else {}
    steps: list[nn.Module] = [v2.RandomResizedCrop(size, scale=(aug.crop_scale_min, 1.0), antialias=True)]
    if aug.flip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(aug.flip_prob))
    if aug.rotation > 0 or aug.translate > 0:
        steps.append(v2.RandomAffine(degrees=aug.rotation, translate=(aug.translate, aug.translate)))
    if aug.jitter > 0:
        steps.append(v2.RandomApply([v2.ColorJitter(brightness=s, contrast=s, **colour)], p=JITTER_PROB))
    if aug.grayscale_prob > 0 and channels == 3:
        steps.append(v2.RandomGrayscale(aug.grayscale_prob))
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True)])


def kornia_transform(aug: AugmentConfig, size: int, channels: int) -> nn.Sequential:
    """The same augmentations with kornia: batched, parameters drawn per sample."""
    s = 0.8 * aug.jitter
    colour = {"saturation": s, "hue": 0.2 * aug.jitter} if channels == 3 else {}
    steps: list[nn.Module] = [
        K.RandomResizedCrop((size, size), scale=(aug.crop_scale_min, 1.0), cropping_mode="resample")
    ]
    if aug.flip_prob > 0:
        steps.append(K.RandomHorizontalFlip(p=aug.flip_prob))
    if aug.rotation > 0 or aug.translate > 0:
        steps.append(K.RandomAffine(degrees=aug.rotation, translate=(aug.translate, aug.translate), p=1.0))
    if aug.jitter > 0:
        steps.append(K.ColorJitter(brightness=s, contrast=s, **colour, p=JITTER_PROB))
    if aug.grayscale_prob > 0 and channels == 3:
        steps.append(K.RandomGrayscale(p=aug.grayscale_prob))
    return nn.Sequential(*steps)


class TwoViews(Dataset):
    """SimSiam's usual input pipeline: per-image transforms twice, then the noise, per image."""

    def __init__(self, images: Tensor, cfg: SidAEConfig) -> None:
        self.images, self.cfg = images, cfg
        self.transform = per_sample_transform(cfg.augment, images.shape[-1], images.shape[1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Views:
        image = tv_tensors.Image(self.images[i])
        x1, x2 = (self.transform(image).as_subclass(Tensor) for _ in range(2))
        if not self.cfg.noised:
            return Views(x1, x2, x1, x2)
        n1, n2 = (add_noise(x[None], self.cfg.noise)[0] for x in (x1, x2))
        return Views(x1, x2, n1, n2)


def loader_views(images: Tensor, cfg: SidAEConfig, device: torch.device) -> Iterator[Views]:
    """Batches of (x1, x2, noised x1, noised x2) from a 2-worker DataLoader, endlessly."""
    loader = DataLoader(
        TwoViews(images, cfg),
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        num_workers=WORKERS,
        pin_memory=device.type == "cuda",
    )
    while True:
        for views in loader:
            yield Views(*(v.to(device, non_blocking=True) for v in views))


def mnist_splits() -> tuple[DataSplits, str]:
    try:
        return load_splits(DataConfig(dataset="mnist", download=False)), "real"
    except DataError:
        return synthetic_splits("mnist", (1, 28, 28), 60_000), "synthetic"


def augment_only(name: str, data: DataSplits, cfg: SidAEConfig, args: argparse.Namespace, device: torch.device) -> None:
    images = data.pretrain.images.to(device)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    batches = float_batches(images, generator)
    kornia = kornia_transform(cfg.augment, images.shape[-1], images.shape[1])

    def kornia_views() -> list[Tensor]:
        x = next(batches)
        return [add_noise(kornia(x), cfg.noise, generator) for _ in range(2)]

    rates = medians(
        repeat_rates(
            {"ours": lambda: make_views(next(batches), cfg, generator), "kornia": kornia_views},
            device,
            args.repeats,
            args.repeat_seconds,
        )
    )
    views = loader_views(data.pretrain.images, cfg, device)
    loader = medians(
        repeat_rates(
            {"loader": lambda: next(views)}, device, args.repeats, args.repeat_seconds, min_steps=2 * IN_FLIGHT
        )
    )["loader"]
    views.close()  # stops the workers
    emit(f"{name}_augment_images_per_second", rates["ours"])
    emit(f"{name}_per_sample_loader_images_per_second", loader)
    emit(f"{name}_kornia_images_per_second", rates["kornia"])
    emit(f"{name}_augment_speedup_vs_per_sample_loader", rates["ours"] / loader)


def end_to_end(data: DataSplits, cfg: SidAEConfig, args: argparse.Namespace, device: torch.device) -> None:
    """Training steps fed by our batched views, then by the per-sample loader's views."""
    model = build_model(cfg, data, device)
    optimizer = build_optimizer(model, cfg)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    batches = float_batches(data.pretrain.images.to(device), generator)
    ours = medians(
        repeat_rates(
            {"ours": lambda: train_step(model, optimizer, make_views(next(batches), cfg, generator), cfg)},
            device,
            args.repeats,
            args.repeat_seconds,
        )
    )["ours"]
    views = loader_views(data.pretrain.images, cfg, device)

    def loader_step() -> None:
        train_step(model, optimizer, next(views), cfg)

    loader = medians(
        repeat_rates({"loader": loader_step}, device, args.repeats, args.repeat_seconds, min_steps=2 * IN_FLIGHT)
    )["loader"]
    views.close()  # stops the workers
    emit("mnist_train_images_per_second", ours)
    emit("mnist_train_per_sample_loader_images_per_second", loader)
    emit("speedup_vs_per_sample_loader", ours / loader)


def main() -> None:
    args = parser(__doc__).parse_args()
    device = setup(args)
    mnist, source = mnist_splits()
    emit("mnist_data", source)
    mnist_cfg = default_config("mnist")
    augment_only("mnist", mnist, mnist_cfg, args, device)
    augment_only("rgb32", synthetic_splits("rgb32", (3, 32, 32), 16_384), default_config("cifar10"), args, device)
    end_to_end(mnist, mnist_cfg, args, device)


if __name__ == "__main__":
    main()
