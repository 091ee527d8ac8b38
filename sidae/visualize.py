"""Pictures of what a trained SidAE does: clean views, their noised copies and the decoder's
reconstructions, one column per image."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

from sidae.checkpoint import write_atomic
from sidae.config import SidAEConfig
from sidae.image_set import to_float
from sidae.model import SidAE
from sidae.noise import add_noise


@torch.no_grad()
def reconstruction_rows(model: SidAE, images: Tensor, cfg: SidAEConfig, seed: int = 0) -> Tensor:
    """(3 n, C, H, W) in [0, 1]: n clean images, their noised copies, the reconstructions.

    At w = 1 the decoder was never trained, so its row shows what an untrained decoder draws."""
    device = next(model.parameters()).device
    model.eval()
    clean = to_float(images, device)
    generator = torch.Generator(device).manual_seed(seed)
    noised = add_noise(clean, cfg.noise, generator)
    reconstructed = model.decoder(model.encoder(noised)).float()
    model.train()
    return torch.cat([clean, noised, reconstructed]).cpu()


def save_reconstruction_grid(model: SidAE, images: Tensor, cfg: SidAEConfig, path: Path) -> Path:
    """Write the clean / noised / reconstructed grid as a PNG (rows in that order)."""
    rows = reconstruction_rows(model, images, cfg)
    png = io.BytesIO()
    save_image(make_grid(rows, nrow=len(images), padding=2, pad_value=1.0), png, format="png")
    write_atomic(path, png.getbuffer())  # never a half-written image, even on a full disk
    return path
