"""SidAE's loss: symmetry, stop-gradient, the w = 1 / w = 0 baselines, and that it can be minimised."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sidae.config import ModelConfig
from sidae.losses import negative_cosine, reconstruction_loss, sidae_loss, simsiam_loss
from sidae.model import SidAE, SidAEOutput


def _outputs(seed: int = 0, n: int = 8, d: int = 16) -> SidAEOutput:
    g = torch.Generator().manual_seed(seed)
    z1, z2, p1, p2 = (torch.randn(n, d, generator=g, requires_grad=True) for _ in range(4))
    r1, r2 = (torch.rand(n, 1, 28, 28, generator=g, requires_grad=True) for _ in range(2))
    return SidAEOutput(z1, z2, p1, p2, r1, r2)


def test_simsiam_loss_is_symmetric_in_the_views() -> None:
    o = _outputs()
    assert torch.allclose(simsiam_loss(o.p1, o.p2, o.z1, o.z2), simsiam_loss(o.p2, o.p1, o.z2, o.z1))


def test_negative_cosine_range_and_minimum() -> None:
    p = torch.randn(4, 8)
    assert negative_cosine(p, p).item() == pytest.approx(-1.0)
    assert negative_cosine(p, -p).item() == pytest.approx(1.0)


def test_stop_gradient_blocks_the_target_branch() -> None:
    o = _outputs()
    simsiam_loss(o.p1, o.p2, o.z1, o.z2).backward()
    assert o.z1.grad is None and o.z2.grad is None
    assert o.p1.grad is not None and o.p1.grad.abs().sum() > 0


def test_w1_is_exactly_simsiam_and_w0_exactly_the_dae() -> None:
    o = _outputs()
    x1, x2 = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    cos = F.cosine_similarity
    plain_simsiam = -0.5 * (cos(o.p1, o.z2.detach()).mean() + cos(o.p2, o.z1.detach()).mean())
    plain_dae = 0.5 * (((o.r1 - x1) ** 2).mean() + ((o.r2 - x2) ** 2).mean())
    assert torch.allclose(sidae_loss(1.0, o, x1, x2).total, plain_simsiam)
    assert torch.allclose(sidae_loss(0.0, o, x1, x2).total, plain_dae)
    mixed = sidae_loss(0.3, o, x1, x2)
    assert torch.allclose(mixed.total, 0.3 * plain_simsiam + 0.7 * plain_dae)
    assert torch.allclose(mixed.siam, plain_simsiam) and torch.allclose(mixed.rec, plain_dae)


def test_switched_off_branch_needs_no_outputs() -> None:
    o = _outputs()
    x = torch.rand(8, 1, 28, 28)
    simsiam_only = SidAEOutput(o.z1, o.z2, o.p1, o.p2, None, None)
    dae_only = SidAEOutput(None, None, None, None, o.r1, o.r2)
    assert sidae_loss(1.0, simsiam_only, x, x).rec.item() == 0.0
    assert sidae_loss(0.0, dae_only, x, x).siam.item() == 0.0


def test_reconstruction_loss_is_zero_for_perfect_reconstruction() -> None:
    x1, x2 = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert reconstruction_loss(x1, x2, x1, x2).item() == 0.0


@pytest.mark.parametrize("w", [0.0, 0.5, 1.0])
def test_loss_decreases_on_a_tiny_batch(w: float) -> None:
    torch.manual_seed(0)
    model = SidAE(ModelConfig(width=8, proj_dim=32, pred_dim=8, decoder_width=8), (1, 28, 28), (0.5,), (0.25,))
    # Adam: the property is that gradients reach every term, not how fast SGD gets there.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    # Smooth images (7x7 random patterns, upsampled) that a small decoder can learn to draw.
    x = F.interpolate(torch.rand(16, 1, 7, 7), size=28, mode="bilinear")
    x1, x2 = x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)
    first = last = None
    for _ in range(60):
        parts = sidae_loss(w, model(x1, x2, w), x, x)
        optimizer.zero_grad()
        parts.total.backward()
        optimizer.step()
        first = first or parts
        last = parts
    if w > 0:
        assert last.siam < first.siam - 0.1
    if w < 1:
        assert last.rec < 0.9 * first.rec


def test_normalised_weighting_balances_the_terms_and_keeps_the_baselines() -> None:
    from sidae.losses import balanced_total

    o = _outputs()
    x1, x2 = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    for w in (0.0, 1.0):
        parts = sidae_loss(w, o, x1, x2)
        assert torch.equal(balanced_total(w, parts, torch.tensor([5.0, 7.0])), parts.total)
    parts = sidae_loss(0.5, o, x1, x2)
    sizes = torch.stack([parts.siam.detach() + 1, parts.rec.detach()])
    # divided by their own sizes, both terms count 1: w alone sets their balance
    assert balanced_total(0.5, parts, sizes).item() == pytest.approx(1.0)
    assert balanced_total(0.25, parts, sizes).item() == pytest.approx(1.0)
    (grad_siam,) = torch.autograd.grad(balanced_total(0.5, parts, sizes), o.p1, retain_graph=True)
    assert torch.allclose(grad_siam, torch.autograd.grad(0.5 * parts.siam / sizes[0], o.p1)[0])
