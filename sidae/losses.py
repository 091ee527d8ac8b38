"""SidAE's loss: L = w * L_siam + (1 - w) * L_rec.

L_siam is SimSiam's symmetric negative cosine with stop-gradient on the target branch
(Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021); L_rec is the mean
squared error between a decoder's output and the *clean* view (a denoising autoencoder,
Vincent et al., 2008). Pure functions: they return the total and its parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from sidae.model import SidAEOutput


class LossParts(NamedTuple):
    total: Tensor
    siam: Tensor  # SimSiam term, in [-1, 1]; 0 when not computed (w = 0)
    rec: Tensor  # reconstruction MSE; 0 when not computed (w = 1)

    def detached(self) -> LossParts:
        return LossParts(*(t.detach() for t in self))


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """D(p, z) = -cos(p, stopgrad(z)), averaged over the batch.

    The only stop-gradient in SidAE: without it SimSiam collapses to a constant.
    """
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """Symmetric SimSiam loss: each view's prediction chases the other view's projection."""
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)


def reconstruction_loss(r1: Tensor, r2: Tensor, x1: Tensor, x2: Tensor) -> Tensor:
    """Mean squared error of each view's reconstruction against its clean view."""
    return 0.5 * F.mse_loss(r1, x1) + 0.5 * F.mse_loss(r2, x2)


def sidae_loss(w: float, out: SidAEOutput, x1: Tensor, x2: Tensor) -> LossParts:
    """L = w * L_siam + (1 - w) * L_rec for the model's outputs on two noised views.

    x1, x2 are the clean views (the reconstruction target). A term that w switches off was not
    computed by the model (its outputs are None) and counts as 0 in the logged parts.
    """
    zero = torch.zeros((), device=x1.device)
    siam = simsiam_loss(out.p1, out.p2, out.z1, out.z2) if w > 0 else zero
    rec = reconstruction_loss(out.r1, out.r2, x1, x2) if w < 1 else zero
    if w == 1.0:
        total = siam
    elif w == 0.0:
        total = rec
    else:
        total = w * siam + (1.0 - w) * rec
    return LossParts(total, siam, rec)


def balanced_total(w: float, parts: LossParts, scales: Tensor) -> Tensor:
    """Normalised weighting: w * (1 + L_siam) / s_siam + (1 - w) * L_rec / s_rec.

    Each term is divided by a running estimate of its own size (`scales`), so that w sets the
    terms' relative influence whatever their units: a negative cosine in [-1, 1] against an MSE
    near 0.05 otherwise squeezes w's effect into a corner of [0, 1]. The +1 maps the cosine term
    to [0, 2] without changing its gradient. At w = 0 or 1 there is one term and nothing to
    balance: the plain loss is returned, so the baselines stay exactly SimSiam and the DAE.
    """
    if w in (0.0, 1.0):
        return parts.total
    return w * (parts.siam + 1) / scales[0] + (1 - w) * parts.rec / scales[1]
