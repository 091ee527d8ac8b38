"""The fair arms of a w-sweep (docs/method.md): the control arm "SimSiam with SidAE's noise" as
a study of its own, whose points configure w = 1 with noised views; BN statistics for the
evaluation recomputed on clean images, for the trained encoder and its untrained control alike."""

from __future__ import annotations

import copy

import optuna
import pytest
import torch

from sidae import controls as control_module
from sidae.batchnorm import with_clean_statistics
from sidae.config import EvalConfig, ModelConfig, SidAEConfig
from sidae.data import DataSplits, channel_stats
from sidae.experiment import evaluate
from sidae.image_set import ImageSet, to_float
from sidae.pretraining import build_model
from studies.service.budgets import budget_for
from studies.service.catalogue import STUDIES, grid_points
from studies.service.trainable import TrialContext, trial_config


def test_the_noised_simsiam_arm_is_simsiam_with_noised_views_on_every_seed() -> None:
    study, budget = STUDIES["noised-simsiam"], budget_for("cpu", "mnist")
    points = grid_points(study, budget)
    assert points == [{"seed": seed, "w": 1.0, "noise_at_w1": True} for seed in budget.seeds]
    assert study.scheduler == "none"  # a control runs to the end, like the w-sweep's baselines
    ctx = TrialContext(dataset="mnist", budget=budget, data_dir="/data", run_root="")
    for point in points:
        cfg = trial_config(point, ctx)
        assert cfg.w == 1.0 and cfg.noised and cfg.noise.level > 0 and cfg.seed == point["seed"]


def test_the_noised_simsiam_space_takes_its_enqueued_points_as_they_are() -> None:
    """Every grid point is enqueued and the space suggests it again: it must accept the point."""
    study, budget = STUDIES["noised-simsiam"], budget_for("cpu", "mnist")
    optuna_study = optuna.create_study(sampler=study.sampler(budget, 0))
    for point in grid_points(study, budget):
        optuna_study.enqueue_trial(point)
        trial = optuna_study.ask()
        study.space(trial, budget, "mnist")
        assert trial.params == point


def _splits(n: int = 256) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    labelled = ImageSet(images, torch.arange(n) % 4)
    mean, std = channel_stats(images)
    return DataSplits("random", labelled, labelled, labelled.subset(torch.arange(64)), labelled, 4, mean, std)


def _cfg(recompute_bn: bool) -> SidAEConfig:
    return SidAEConfig(
        model=ModelConfig(width=4, proj_dim=16, pred_dim=4, decoder_width=4),
        eval=EvalConfig(label_fractions=(0.5,), finetune=False, knn_bank_size=128, recompute_bn=recompute_bn),
        device="cpu",
    )


def _with_noisy_statistics(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The model as if trained on other inputs: its BN running statistics scrambled."""
    g = torch.Generator().manual_seed(seed)
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.copy_(torch.randn(layer.num_features, generator=g))
            layer.running_var.copy_(torch.rand(layer.num_features, generator=g) * 4 + 0.1)
    return model


def test_recomputed_statistics_are_the_clean_images_own_and_leave_the_encoder_alone() -> None:
    data, device = _splits(), torch.device("cpu")
    encoder = _with_noisy_statistics(build_model(_cfg(True), data, device), 1).encoder
    before = copy.deepcopy(encoder.state_dict())
    recomputed = with_clean_statistics(encoder, data.pretrain.images, device, seed=0)
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())  # untouched
    first_conv, first_bn = recomputed[1], recomputed[2]  # Standardize, then the stem's conv and BN
    with torch.no_grad():
        stem = first_conv(recomputed[0](to_float(data.pretrain.images, device)))
    assert torch.allclose(first_bn.running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not recomputed.training


@pytest.mark.parametrize("recompute_bn", [True, False])
def test_with_recompute_bn_the_evaluation_does_not_depend_on_the_trained_statistics(recompute_bn: bool) -> None:
    """Two encoders that differ only in their BN running statistics (one trained on noised views,
    say) score the same when the statistics are recomputed, and differently when not."""
    data, cfg, device = _splits(), _cfg(recompute_bn), torch.device("cpu")
    scores = [
        evaluate(_with_noisy_statistics(build_model(cfg, data, device), seed), data, cfg, device) for seed in (1, 2)
    ]
    same = scores[0]["linear"] == scores[1]["linear"] and scores[0]["knn"] == scores[1]["knn"]
    assert same == recompute_bn


@pytest.mark.parametrize("recompute_bn", [True, False])
def test_the_untrained_control_is_probed_with_the_same_statistics(
    monkeypatch: pytest.MonkeyPatch, recompute_bn: bool
) -> None:
    """The untrained encoder's statistics are recomputed exactly when the trained encoder's are:
    both are then the same measurement of different weights."""
    data, cfg, device = _splits(), _cfg(recompute_bn), torch.device("cpu")
    seen: list[torch.nn.Module] = []
    extract = control_module.extract_features
    monkeypatch.setattr(
        control_module, "extract_features", lambda encoder, *a: seen.append(encoder) or extract(encoder, *a)
    )
    control_module.controls(cfg, data, device)
    running_means = torch.cat([m.running_mean for m in seen[0].modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert running_means.abs().sum().item() > 0 if recompute_bn else running_means.abs().sum().item() == 0
