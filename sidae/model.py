"""The SidAE model: one encoder shared by both views, SimSiam's projector and predictor, and a
decoder that reconstructs the clean view from the encoding of its noised copy.

Each noised view goes through the encoder once; that encoding feeds both branches, so SidAE
costs one encoder pass per view, like SimSiam. A branch that w switches off is not run:
at w = 1 the model is SimSiam, at w = 0 a denoising autoencoder.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from sidae.backbones import Decoder, build_encoder
from sidae.config import ModelConfig


class SidAEOutput(NamedTuple):
    z1: Tensor | None  # projections (SimSiam targets); None when w = 0
    z2: Tensor | None
    p1: Tensor | None  # predictions
    p2: Tensor | None
    r1: Tensor | None  # reconstructions of the clean views; None when w = 1
    r2: Tensor | None


def projector(in_dim: int, dim: int) -> nn.Sequential:
    """SimSiam's projection MLP: 3 layers with BN; the output BN has no affine parameters."""
    return nn.Sequential(
        nn.Linear(in_dim, dim, bias=False),
        nn.BatchNorm1d(dim),
        nn.ReLU(inplace=True),
        nn.Linear(dim, dim, bias=False),
        nn.BatchNorm1d(dim),
        nn.ReLU(inplace=True),
        nn.Linear(dim, dim, bias=False),
        nn.BatchNorm1d(dim, affine=False),
    )


def predictor(dim: int, pred_dim: int) -> nn.Sequential:
    """SimSiam's bottleneck prediction MLP (dim -> pred_dim -> dim)."""
    return nn.Sequential(
        nn.Linear(dim, pred_dim, bias=False),
        nn.BatchNorm1d(pred_dim),
        nn.ReLU(inplace=True),
        nn.Linear(pred_dim, dim),
    )


class SidAE(nn.Module):
    def __init__(
        self, cfg: ModelConfig, image_shape: tuple[int, int, int], mean: tuple[float, ...], std: tuple[float, ...]
    ) -> None:
        super().__init__()
        channels, size, _ = image_shape
        self.encoder, self.feat_dim = build_encoder(cfg.backbone, channels, cfg.width, mean, std)
        self.projector = projector(self.feat_dim, cfg.proj_dim)
        self.predictor = predictor(cfg.proj_dim, cfg.pred_dim)
        self.decoder = Decoder(self.feat_dim, channels, size, cfg.decoder_width)

    def forward(self, x1: Tensor, x2: Tensor, w: float) -> SidAEOutput:
        """x1, x2: the two (noised) views. Returns what L_siam and L_rec need at this w."""
        h1, h2 = self.encoder(x1), self.encoder(x2)
        z1 = z2 = p1 = p2 = r1 = r2 = None
        if w > 0:
            z1, z2 = self.projector(h1), self.projector(h2)
            p1, p2 = self.predictor(z1), self.predictor(z2)
        if w < 1:
            r1, r2 = self.decoder(h1), self.decoder(h2)
        return SidAEOutput(z1, z2, p1, p2, r1, r2)
