"""The SidAE model: one encoder shared by both views, SimSiam's projector and predictor, and a
decoder that reconstructs the clean view from the encoding of its noised copy: the pooled
feature vector by default, the feature map before pooling with decoder_input "feature_map".

Each noised view goes through the encoder once; that encoding feeds both branches, so SidAE
costs one encoder pass per view, like SimSiam. Where the Siamese branch must not see the noise
(SidAEConfig.siamese_noise off), it encodes the clean views itself. A branch that w switches off
is not run: at w = 1 the model is SimSiam, at w = 0 a denoising autoencoder.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from sidae.backbones import Decoder, build_encoder
from sidae.config import ModelConfig

POOLING = 2  # the encoder's last two modules: global average pooling and flatten (sidae.backbones)


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
        self.decoder = Decoder(
            self.feat_dim, channels, size, cfg.decoder_width, from_map=cfg.decoder_input == "feature_map"
        )

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The pooled encoding h (what the Siamese branch and the probes read) and the decoder's
        input: h itself, or the feature map before pooling (ModelConfig.decoder_input)."""
        if not self.decoder.from_map:
            h = self.encoder(x)
            return h, h
        feature_map = self.encoder[:-POOLING](x)
        return self.encoder[-POOLING:](feature_map), feature_map

    def forward(
        self, x1: Tensor, x2: Tensor, w: float, siamese_views: tuple[Tensor, Tensor] | None = None
    ) -> SidAEOutput:
        """x1, x2: the two (noised) views. Returns what L_siam and L_rec need at this w.

        siamese_views: other inputs for the Siamese branch (the clean views, when it must not see
        the noise: SidAEConfig.siamese_noise); None: it shares the encodings of x1, x2."""
        z1 = z2 = p1 = p2 = r1 = r2 = None
        (h1, d1), (h2, d2) = self._encode(x1), self._encode(x2)
        if w > 0:
            s1, s2 = (
                (h1, h2) if siamese_views is None else (self.encoder(siamese_views[0]), self.encoder(siamese_views[1]))
            )
            z1, z2 = self.projector(s1), self.projector(s2)
            p1, p2 = self.predictor(z1), self.predictor(z2)
        if w < 1:
            r1, r2 = self.decoder(d1), self.decoder(d2)
        return SidAEOutput(z1, z2, p1, p2, r1, r2)
