"""Configuration: defaults per data set, round trip, and one-line errors for bad values."""

from __future__ import annotations

import dataclasses

import pytest

from sidae.config import (
    CPU_FINETUNE_STEPS,
    CPU_MODEL,
    AugmentConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    SidAEConfig,
    default_config,
    override,
)
from sidae.config_checks import ConfigError


def test_defaults_follow_the_data_set() -> None:
    assert default_config("mnist").model.backbone == "convnet"
    assert default_config("mnist").augment.flip_prob == 0.0  # digits are not mirror-symmetric
    assert default_config("cifar10").model.backbone == "resnet18"
    assert default_config("stl10").augment.flip_prob == 0.5


def test_round_trip_through_a_dict() -> None:
    cfg = dataclasses.replace(default_config("cifar10", w=0.25), eval=EvalConfig(label_fractions=(0.05, 1.0)))
    assert SidAEConfig.from_dict(cfg.to_dict()) == cfg


def test_noised_only_where_the_denoising_term_exists() -> None:
    assert SidAEConfig(w=0.5).noised and not SidAEConfig(w=1.0).noised
    assert SidAEConfig(w=1.0, noise_at_w1=True).noised


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SidAEConfig(w=1.5), "w must be in"),
        (lambda: SidAEConfig(w=-0.1), "w must be in"),
        (lambda: DataConfig(dataset="imagenet"), "unknown dataset 'imagenet'"),
        (lambda: ModelConfig(backbone="vit"), "unknown backbone 'vit'"),
        (lambda: ModelConfig(backbone="resnet18", width=7), "a resnet18's width must be at least 8, got 7"),
        (lambda: AugmentConfig(crop_scale_min=0.0), "crop_scale_min"),
        (lambda: OptimConfig(base_lr=float("nan")), "base_lr"),
        (lambda: EvalConfig(label_fractions=(0.0,)), "label fraction"),
        (lambda: EvalConfig(label_fractions=(1.01,)), "label fraction"),
        (lambda: default_config("svhn"), "unknown dataset"),
        (lambda: EvalConfig(finetune_augment="mixup"), "unknown finetune_augment 'mixup'"),
    ],
)
def test_bad_values_are_one_line_errors(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def test_override_by_dotted_path() -> None:
    cfg = override(default_config("mnist"), {"w": 0.2, "noise.level": 0.5, "optim.epochs": 3})
    assert (cfg.w, cfg.noise.level, cfg.optim.epochs) == (0.2, 0.5, 3)
    assert cfg.noise.kind == default_config("mnist").noise.kind
    with pytest.raises(ConfigError, match="unknown config field 'noise.sigma'"):
        override(cfg, {"noise.sigma": 0.1})
    with pytest.raises(ConfigError, match="w must be in"):
        override(cfg, {"w": 2.0})


def test_optimizer_choice() -> None:
    import torch

    from sidae.model import SidAE
    from sidae.pretraining import build_optimizer

    cfg = override(default_config("mnist"), {"optim.optimizer": "adamw", "optim.base_lr": 1e-3})
    model = SidAE(cfg.model, (1, 28, 28), (0.5,), (0.25,))
    assert isinstance(build_optimizer(model, cfg), torch.optim.AdamW)
    assert isinstance(build_optimizer(model, default_config("mnist")), torch.optim.SGD)
    with pytest.raises(ConfigError, match="unknown optimizer 'lamb'"):
        override(cfg, {"optim.optimizer": "lamb"})


def test_stl10_keeps_most_of_its_5000_labels_for_the_probes() -> None:
    assert default_config("stl10").data.val_size == 1000
    assert default_config("cifar10").data.val_size is None  # automatic: 5,000 of 50,000


def test_a_cpu_gets_a_reduced_resnet_and_a_gpu_the_papers() -> None:
    for dataset in ("cifar10", "cifar10-jpeg", "stl10", "imagefolder"):
        assert default_config(dataset, device="cuda").model == ModelConfig("resnet18", 64, 2048, 512, 64)
        cpu = default_config(dataset, device="cpu")
        assert cpu.model == CPU_MODEL and cpu.eval.finetune_steps == CPU_FINETUNE_STEPS and cpu.device == "cpu"
    for dataset in ("mnist", "fashion-mnist"):  # published results: the same on either device
        assert default_config(dataset, device="cpu") == dataclasses.replace(
            default_config(dataset, device="cuda"), device="cpu"
        )


def test_override_checks_each_value_against_the_fields_type() -> None:
    cfg = override(default_config("mnist"), {"w": 1, "optim.epochs": 3.0, "eval.label_fractions": [0.1, 1]})
    assert (cfg.w, cfg.optim.epochs, cfg.eval.label_fractions) == (1.0, 3, (0.1, 1.0))
    assert isinstance(cfg.w, float) and isinstance(cfg.optim.epochs, int)
    for values, message in (
        ({"w": "abc"}, "w expects a number"),
        ({"optim.epochs": 2.5}, "a whole number"),
        ({"normalize_losses": "yes"}, "True or False"),
        ({"noise.kind": 3}, "expects text"),
        ({"eval.label_fractions": 0.5}, "a list of numbers"),
    ):
        with pytest.raises(ConfigError, match=message):
            override(cfg, values)
