"""Model shapes for each input size, and that w switches branches off."""

from __future__ import annotations

import pytest
import torch

from sidae.config import ModelConfig
from sidae.model import SidAE


@pytest.mark.parametrize(
    ("backbone", "shape"),
    [("convnet", (1, 28, 28)), ("resnet18", (3, 32, 32)), ("resnet18", (3, 96, 96)), ("convnet", (3, 32, 32))],
)
def test_shapes(backbone: str, shape: tuple[int, int, int]) -> None:
    cfg = ModelConfig(backbone=backbone, width=8, proj_dim=32, pred_dim=8, decoder_width=8)
    model = SidAE(cfg, shape, (0.5,) * shape[0], (0.25,) * shape[0])
    x = torch.rand(2, *shape)
    out = model(x, x, 0.5)
    assert model.feat_dim == 64
    assert out.z1.shape == out.p1.shape == (2, 32)
    assert out.r1.shape == (2, *shape)
    assert out.r1.min() >= 0.0 and out.r1.max() <= 1.0


class _Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *_: object) -> None:
        self.calls += 1


@pytest.mark.parametrize(
    ("w", "decoder_runs", "heads_run"), [(1.0, False, True), (0.0, True, False), (0.5, True, True)]
)
def test_w_switches_branches_off(w: float, decoder_runs: bool, heads_run: bool) -> None:
    model = SidAE(ModelConfig(width=4, proj_dim=16, pred_dim=4, decoder_width=4), (1, 28, 28), (0.5,), (0.25,))
    counts = {name: _Counter() for name in ("encoder", "projector", "predictor", "decoder")}
    for name, counter in counts.items():
        getattr(model, name).register_forward_hook(counter)
    x = torch.rand(4, 1, 28, 28)
    out = model(x, x, w)
    assert counts["encoder"].calls == 2  # one pass per view feeds both branches
    assert counts["decoder"].calls == (2 if decoder_runs else 0)
    assert counts["projector"].calls == counts["predictor"].calls == (2 if heads_run else 0)
    assert (out.r1 is not None) == decoder_runs and (out.p1 is not None) == heads_run


def test_unsupported_image_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="image size 30"):
        SidAE(ModelConfig(width=4), (1, 30, 30), (0.5,), (0.25,))


def test_reconstruction_grid_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from sidae.config import SidAEConfig
    from sidae.visualize import save_reconstruction_grid

    model = SidAE(ModelConfig(width=4, proj_dim=16, pred_dim=4, decoder_width=4), (1, 28, 28), (0.5,), (0.25,))
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    path = save_reconstruction_grid(model, images, SidAEConfig(), tmp_path / "grid.png")
    with Image.open(path) as grid:
        assert grid.size == (6 * 30 + 2, 3 * 30 + 2)  # 6 columns, 3 rows, 2 px padding
