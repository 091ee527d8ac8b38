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


def test_the_siamese_branch_can_encode_other_views_than_the_decoder() -> None:
    """siamese_views (the clean views, SidAEConfig.siamese_noise off): the projector works on
    their encodings, the decoder still on those of the noised views."""
    model = SidAE(ModelConfig(width=4, proj_dim=16, pred_dim=4, decoder_width=4), (1, 28, 28), (0.5,), (0.25,)).eval()
    clean1, clean2, noised1, noised2 = torch.rand(4, 3, 1, 28, 28)
    with torch.no_grad():
        out = model(noised1, noised2, 0.5, siamese_views=(clean1, clean2))
        for z, p, r, clean, noised in (
            (out.z1, out.p1, out.r1, clean1, noised1),
            (out.z2, out.p2, out.r2, clean2, noised2),
        ):
            assert torch.allclose(z, model.projector(model.encoder(clean)))
            assert torch.allclose(p, model.predictor(z))
            assert torch.allclose(r, model.decoder(model.encoder(noised)))
            assert not torch.allclose(z, model.projector(model.encoder(noised)))


@pytest.mark.parametrize(
    ("backbone", "shape", "map_side"),
    [
        ("convnet", (1, 28, 28), 4),
        ("resnet18", (3, 32, 32), 4),
        ("resnet18", (3, 96, 96), 12),
        ("convnet", (3, 32, 32), 4),
    ],
)
def test_the_decoder_can_read_the_feature_map_before_pooling(
    backbone: str, shape: tuple[int, int, int], map_side: int
) -> None:
    """decoder_input "feature_map": the decoder's input is the encoder's last map (8 * width
    channels), not the pooled vector; the reconstruction keeps the image's shape."""
    cfg = ModelConfig(backbone=backbone, width=8, proj_dim=32, pred_dim=8, decoder_width=8, decoder_input="feature_map")
    model = SidAE(cfg, shape, (0.5,) * shape[0], (0.25,) * shape[0])
    seen: list[torch.Size] = []
    model.decoder.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].shape))
    x = torch.rand(2, *shape)
    out = model(x, x, 0.5)
    assert seen == [torch.Size([2, 64, map_side, map_side])] * 2
    assert out.z1.shape == (2, 32) and out.r1.shape == (2, *shape)
    assert out.r1.min() >= 0.0 and out.r1.max() <= 1.0
    assert torch.equal(model.encoder(x), model._encode(x)[0])  # the probes' pooled encoding is unchanged


@pytest.mark.parametrize("decoder_input", ["pooled", "feature_map"])
@pytest.mark.parametrize(("backbone", "shape"), [("convnet", (1, 28, 28)), ("resnet18", (3, 32, 32))])
def test_a_training_step_trains_the_decoder_from_either_input(
    decoder_input: str, backbone: str, shape: tuple[int, int, int]
) -> None:
    from sidae.config import AugmentConfig, OptimConfig, SidAEConfig
    from sidae.pretraining import build_optimizer, make_views, train_step

    cfg = SidAEConfig(
        w=0.5,
        model=ModelConfig(
            backbone=backbone, width=8, proj_dim=16, pred_dim=4, decoder_width=4, decoder_input=decoder_input
        ),
        augment=AugmentConfig(crop_scale_min=1.0, flip_prob=0.0, jitter=0.0, grayscale_prob=0.0),
        optim=OptimConfig(optimizer="adamw", base_lr=1e-3, batch_size=8),
        device="cpu",
    )
    model = SidAE(cfg.model, shape, (0.5,) * shape[0], (0.25,) * shape[0])
    optimizer = build_optimizer(model, cfg)
    before = [p.detach().clone() for p in model.decoder.parameters()]
    g = torch.Generator().manual_seed(0)
    parts = train_step(model, optimizer, make_views(torch.rand(8, *shape, generator=g), cfg, g), cfg)
    assert torch.isfinite(parts.total) and parts.rec > 0
    assert all(not torch.equal(b, p) for b, p in zip(before, model.decoder.parameters(), strict=True))


def test_an_unknown_decoder_input_is_a_one_line_error() -> None:
    from sidae.config_checks import ConfigError

    with pytest.raises(ConfigError, match="unknown decoder_input 'latent'; choose from pooled, feature_map"):
        ModelConfig(decoder_input="latent")


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
