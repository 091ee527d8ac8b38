"""A data set's images as one uint8 tensor in memory, and the error every data reader raises.

Batches are sliced from an `ImageSet` on the training device and converted to float only there
(`to_float`): no DataLoader workers or per-image Python transforms are involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sidae.errors import UserError


class DataError(UserError, RuntimeError):
    """Missing, corrupt or unusable data; the message is one line that says what to do."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line of at most 200 characters, for a DataError."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class ImageSet:
    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # int64 (N,), -1 where unlabelled

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])


def to_float(images: Tensor, device: torch.device) -> Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1] on device: batches are sliced from the uint8 sets
    and converted only on the device that uses them."""
    return images.to(device, non_blocking=True).float().div_(255)
