"""Batched view augmentation with independent random parameters per sample.

torchvision's v2 transforms draw one set of parameters per call, so applied to a batch tensor
every image gets the same crop. SimSiam needs each image's two views to differ independently,
so here every parameter is drawn per sample and applied in one pass on the training device:
the geometric part (random resized crop, flip, rotation, translation) is one affine warp
(`affine_grid` + `grid_sample`), the photometric part (colour jitter, grayscale) is a few
per-sample tensor ops. Images are float (N, C, H, W) in [0, 1].

A view's parameters are drawn first (view_params), then applied (apply_view): augment_views
draws both SimSiam views' parameters in turn, the random stream two augment calls would use,
and makes their pixels in one pass over a batch of 2N, half the tensor operations. On a small
batch on a CPU each operation's fixed cost is much of the view pipeline's time
(benchmarks/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from sidae.config import AugmentConfig

# ITU-R BT.601 luma weights (torchvision's rgb_to_grayscale rounds the red one to 0.2989).
_LUMA = (0.299, 0.587, 0.114)
_JITTER_PROB = 0.8  # SimCLR/SimSiam apply colour jitter with probability 0.8


def _uniform(n: int, low: float, high: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * torch.rand(n, device=like.device, dtype=like.dtype, generator=generator)


def _bernoulli(n: int, p: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, device=like.device, generator=generator) < p


def affine_params(x: Tensor, aug: AugmentConfig, generator: torch.Generator | None) -> Tensor:
    """Per-sample (N, 2, 3) matrices mapping output to input coordinates in [-1, 1].

    A crop of area fraction s and aspect ratio r (log-uniform in [3/4, 4/3], as
    RandomResizedCrop) has half-sides sqrt(s r), sqrt(s / r) in normalised units; its centre is
    uniform where the crop fits. Rotation, flip and translation compose into the same matrix.
    """
    n = x.shape[0]
    scale = _uniform(n, aug.crop_scale_min, 1.0, x, generator)
    # Keep the crop inside the image: area s fits with ratio r only if s r <= 1 and s / r <= 1
    # (torchvision rejects and redraws such crops; clamping r is the batched equivalent).
    log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), x, generator)
    log_ratio = torch.maximum(torch.minimum(log_ratio, -torch.log(scale)), torch.log(scale))
    half_w = torch.sqrt(scale * torch.exp(log_ratio))
    half_h = torch.sqrt(scale / torch.exp(log_ratio))
    cx = (1 - half_w) * _uniform(n, -1.0, 1.0, x, generator)
    cy = (1 - half_h) * _uniform(n, -1.0, 1.0, x, generator)
    cx = cx + _uniform(n, -2 * aug.translate, 2 * aug.translate, x, generator)
    cy = cy + _uniform(n, -2 * aug.translate, 2 * aug.translate, x, generator)
    flip = torch.where(_bernoulli(n, aug.flip_prob, x, generator), -1.0, 1.0).to(x.dtype)
    angle = _uniform(n, -aug.rotation, aug.rotation, x, generator) * (math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = half_w * flip, half_h
    row0 = torch.stack([cos * sx, -sin * sy, cx], dim=1)
    row1 = torch.stack([sin * sx, cos * sy, cy], dim=1)
    return torch.stack([row0, row1], dim=1)


def _grayscale(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _per_sample(values: Tensor) -> Tensor:
    return values.view(-1, 1, 1, 1)


def mix_channels(x: Tensor, matrices: Tensor) -> Tensor:
    """Each RGB pixel of sample i times the 3x3 matrix matrices[i]: one batched matmul where
    the same map as separate per-channel tensor ops took six times as long (benchmarks/README.md)."""
    return torch.bmm(matrices, x.reshape(x.shape[0], 3, -1)).view_as(x)


def _rgb_eye(like: Tensor) -> Tensor:
    return torch.eye(3, device=like.device, dtype=like.dtype)


def saturation_matrix(factors: Tensor) -> Tensor:
    """(N, 3, 3) blends of each pixel with its luma, gray + s (x - gray), as torchvision's
    adjust_saturation: s I + (1 - s) 1 luma^T."""
    s = factors.view(-1, 1, 1)
    luma = torch.tensor(_LUMA, device=factors.device, dtype=factors.dtype).expand(3, 3)
    return s * _rgb_eye(factors) + (1 - s) * luma


def hue_matrix(turns: Tensor) -> Tensor:
    """(N, 3, 3) rotations of RGB about the grey axis k = (1, 1, 1) / sqrt(3) by `turns` of a
    full turn (a linear map, much cheaper than torchvision's HSV round trip). By Rodrigues'
    formula, with P = k k^T the projection on grey and [k]x the cross product with k:
    R = P + cos(a) (I - P) + sin(a) [k]x."""
    eye = _rgb_eye(turns)
    grey = torch.full_like(eye, 1 / 3)
    k_cross = torch.tensor([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]], device=turns.device, dtype=turns.dtype)
    angle = (turns * 2 * math.pi).view(-1, 1, 1)
    return grey + torch.cos(angle) * (eye - grey) + torch.sin(angle) * k_cross / math.sqrt(3)


def rotate_hue(x: Tensor, turns: Tensor) -> Tensor:
    """Hue shift of RGB images x by `turns` (per sample) of a full turn; see hue_matrix."""
    return mix_channels(x, hue_matrix(turns))


@dataclass(frozen=True)
class Jitter:
    """Per-sample colour-jitter factors; saturation and hue are None for one-channel images."""

    apply: Tensor  # (N,) bool: jittered or left as it is
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor | None
    hue: Tensor | None  # in turns


def draw_jitter(x: Tensor, strength: float, generator: torch.Generator | None) -> Jitter:
    """Brightness, contrast, saturation (factors in 1 +- 0.8 s) and hue (+-0.2 s turns), drawn
    per sample, applied to a random 80 % of the batch."""
    n, rgb, s = x.shape[0], x.shape[1] == 3, 0.8 * strength
    apply = _bernoulli(n, _JITTER_PROB, x, generator)
    brightness = _uniform(n, 1 - s, 1 + s, x, generator)
    contrast = _uniform(n, 1 - s, 1 + s, x, generator)
    saturation = _uniform(n, 1 - s, 1 + s, x, generator) if rgb else None
    hue = _uniform(n, -0.2 * strength, 0.2 * strength, x, generator) if rgb else None
    return Jitter(apply, brightness, contrast, saturation, hue)


def colour_jitter(x: Tensor, jitter: Jitter) -> Tensor:
    """Jitter's factors applied to the images x, in torchvision's default order."""
    out = (x * _per_sample(jitter.brightness)).clamp(0, 1)
    mean = _grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
    out = (mean + _per_sample(jitter.contrast) * (out - mean)).clamp(0, 1)
    if jitter.saturation is not None and jitter.hue is not None:
        out = mix_channels(out, saturation_matrix(jitter.saturation)).clamp_(0, 1)
        out = rotate_hue(out, jitter.hue).clamp_(0, 1)
    return torch.where(_per_sample(jitter.apply), out, x)


@dataclass(frozen=True)
class ViewParams:
    """One random view of every image of a batch; jitter and gray are None where switched off."""

    theta: Tensor  # (N, 2, 3) affine warps, see affine_params
    jitter: Jitter | None
    gray: Tensor | None  # (N,) bool: made grayscale


def _cat(parts: list[Tensor | None]) -> Tensor | None:
    return None if parts[0] is None else torch.cat(parts)


def cat_params(views: list[ViewParams]) -> ViewParams:
    """The views' parameters one after another, for the images repeated as many times."""
    jitters = [v.jitter for v in views]
    jitter = None
    if jitters[0] is not None:
        jitter = Jitter(*(_cat([getattr(j, f.name) for j in jitters]) for f in fields(Jitter)))
    return ViewParams(_cat([v.theta for v in views]), jitter, _cat([v.gray for v in views]))


def view_params(x: Tensor, aug: AugmentConfig, generator: torch.Generator | None) -> ViewParams:
    """Draw one view's parameters for every image in x, always in the same order (a seed's
    random stream: affine warp, colour jitter, grayscale)."""
    theta = affine_params(x, aug, generator)
    jitter = draw_jitter(x, aug.jitter, generator) if aug.jitter > 0 else None
    rgb_gray = aug.grayscale_prob > 0 and x.shape[1] == 3
    gray = _bernoulli(x.shape[0], aug.grayscale_prob, x, generator) if rgb_gray else None
    return ViewParams(theta, jitter, gray)


def apply_view(x: Tensor, params: ViewParams) -> Tensor:
    """The view of x that params describe (one row of parameters per image)."""
    grid = F.affine_grid(params.theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if params.jitter is not None:
        out = colour_jitter(out, params.jitter)
    if params.gray is not None:
        out = torch.where(_per_sample(params.gray), _grayscale(out).expand_as(out), out)
    return out


def augment(x: Tensor, aug: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """One random view of every image in x."""
    return apply_view(x, view_params(x, aug, generator))


def augment_views(
    x: Tensor, aug: AugmentConfig, generator: torch.Generator | None = None, views: int = 2
) -> tuple[Tensor, ...]:
    """`views` independent random views of every image in x (SimSiam's two by default): the
    same views as that many augment calls in a row, made in one pass."""
    params = cat_params([view_params(x, aug, generator) for _ in range(views)])
    return apply_view(x.repeat(views, 1, 1, 1), params).chunk(views)
