"""The pre-training loop's rules, checked on what the loop does rather than on its flags: the
encoder sees clean views at w = 1, a branch that w switches off keeps its weights, the cosine
schedule with the predictor's fixed lr (SimSiam's fix_pred_lr), the model back in train mode
after each epoch's monitor, bfloat16 pre-training on the CPU only when asked; and fine-tuning
works on a copy of the pre-trained encoder.

A tiny network on random images: each pre-training run takes about a second.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
import torch

from sidae import pretraining as loop
from sidae.config import AugmentConfig, EvalConfig, ModelConfig, NoiseConfig, OptimConfig, SidAEConfig
from sidae.data import DataSplits, channel_stats
from sidae.evaluate import finetune
from sidae.image_set import ImageSet

STEPS_PER_EPOCH, EPOCHS, BATCH = 4, 2, 32
NO_AUGMENT = AugmentConfig(crop_scale_min=1.0, flip_prob=0.0, jitter=0.0, grayscale_prob=0.0)


def _splits(n: int = STEPS_PER_EPOCH * BATCH) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    labelled = ImageSet(images, torch.randint(0, 10, (n,), generator=g))
    mean, std = channel_stats(images)
    held_out = labelled.subset(torch.arange(32))
    return DataSplits("random", labelled, labelled, held_out, held_out, 10, mean, std)


def _cfg(w: float, **kw: object) -> SidAEConfig:
    optim = kw.pop("optim", OptimConfig(epochs=EPOCHS, batch_size=BATCH, base_lr=0.05))
    return SidAEConfig(
        w=w,
        model=ModelConfig(width=4, proj_dim=16, pred_dim=4, decoder_width=4),
        noise=NoiseConfig("gaussian", 0.3),
        augment=NO_AUGMENT,
        optim=optim,
        eval=EvalConfig(knn_bank_size=64, finetune_steps=5),
        device="cpu",
        seed=1,
        **kw,
    )


def _watch_encoder(monkeypatch: pytest.MonkeyPatch, hook: Callable[[torch.nn.Module], object]) -> None:
    """Pass the encoder of every model the loop builds to `hook` (which registers its watchers)."""
    build = loop.build_model

    def build_and_watch(*args: object) -> torch.nn.Module:
        model = build(*args)
        hook(model.encoder)
        return model

    monkeypatch.setattr(loop, "build_model", build_and_watch)


def _encoder_inputs(monkeypatch: pytest.MonkeyPatch, cfg: SidAEConfig, data: DataSplits) -> torch.Tensor:
    """Every image the encoder saw while training (not the monitor's, which runs in eval mode)."""
    seen: list[torch.Tensor] = []
    _watch_encoder(
        monkeypatch,
        lambda encoder: encoder.register_forward_pre_hook(
            lambda module, inputs: seen.append(inputs[0].detach().clone()) if module.training else None
        ),
    )
    loop.pretrain(cfg, data, progress=False)
    return torch.cat(seen)


def _distance_to_nearest_clean_image(inputs: torch.Tensor, data: DataSplits) -> torch.Tensor:
    clean = data.pretrain.images.float().div(255).flatten(1)
    return torch.cdist(inputs.flatten(1).float(), clean, p=float("inf")).min(dim=1).values


@pytest.mark.parametrize(("w", "noise_at_w1", "clean"), [(1.0, False, True), (1.0, True, False), (0.5, False, False)])
def test_the_encoder_sees_clean_views_only_at_w1(
    monkeypatch: pytest.MonkeyPatch, w: float, noise_at_w1: bool, clean: bool
) -> None:
    """With augmentation off the clean views are the data set's images: at w = 1 (pure SimSiam)
    every encoder input must be one of them; with noise in play none is."""
    data = _splits()
    inputs = _encoder_inputs(monkeypatch, _cfg(w, noise_at_w1=noise_at_w1), data)
    assert len(inputs) == 2 * EPOCHS * STEPS_PER_EPOCH * BATCH  # two views per image
    distance = _distance_to_nearest_clean_image(inputs, data)
    if clean:
        assert distance.max() < 1e-4
    else:
        assert distance.min() > 0.05


@pytest.mark.parametrize(("siamese_noise", "clean_share"), [(True, 0.0), (False, 0.5)])
def test_the_siamese_branch_sees_clean_views_when_siamese_noise_is_off(
    monkeypatch: pytest.MonkeyPatch, siamese_noise: bool, clean_share: float
) -> None:
    """For 0 < w < 1 without siamese_noise, SimSiam's term is computed on clean views, as at
    w = 1: the encoder sees each view clean (Siamese branch) and noised (decoder)."""
    data = _splits()
    inputs = _encoder_inputs(monkeypatch, _cfg(0.5, siamese_noise=siamese_noise), data)
    clean = _distance_to_nearest_clean_image(inputs, data) < 1e-4
    assert clean.float().mean().item() == clean_share
    assert len(inputs) == (2 if siamese_noise else 4) * EPOCHS * STEPS_PER_EPOCH * BATCH


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> list[str]:
    return [name for name, value in module.state_dict().items() if not torch.equal(value, before[name])]


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize(
    ("w", "off", "on"),
    [
        (0.0, ("projector", "predictor"), ("encoder", "decoder")),
        (1.0, ("decoder",), ("encoder", "projector", "predictor")),
    ],
)
def test_a_branch_switched_off_keeps_its_weights(
    optimizer: str, w: float, off: tuple[str, ...], on: tuple[str, ...]
) -> None:
    """w = 0 is a DAE: the SimSiam heads must not move (not even by weight decay); w = 1 is
    SimSiam: the decoder must not. The branches in use do train."""
    data = _splits()
    base_lr = 1e-3 if optimizer == "adamw" else 0.05
    cfg = _cfg(
        w, optim=OptimConfig(optimizer=optimizer, epochs=1, batch_size=BATCH, base_lr=base_lr, weight_decay=1e-2)
    )
    initial = loop.build_model(cfg, data, torch.device("cpu"))  # the same seeded initialisation
    trained = loop.pretrain(cfg, data, progress=False).model
    for name in off:
        assert _changed(_state(getattr(initial, name)), getattr(trained, name)) == [], name
    for name in on:
        assert _changed(_state(getattr(initial, name)), getattr(trained, name)), name


def _watch_steps(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Per training step: each parameter group's lr and whether every module is in train mode."""
    steps: list[dict[str, object]] = []
    step = loop.train_step

    def watched(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *args: object, **kwargs: object) -> object:
        steps.append(
            {
                "lrs": [group["lr"] for group in optimizer.param_groups],
                "groups": [{id(p) for p in group["params"]} for group in optimizer.param_groups],
                "predictor": {id(p) for p in model.predictor.parameters()},
                "training": all(m.training for m in model.modules()),
            }
        )
        return step(model, optimizer, *args, **kwargs)

    monkeypatch.setattr(loop, "train_step", watched)
    return steps


@pytest.mark.parametrize("fix_pred_lr", [True, False])
def test_cosine_schedule_over_all_steps_with_the_predictor_lr_fixed(
    monkeypatch: pytest.MonkeyPatch, fix_pred_lr: bool
) -> None:
    """lr_t = lr * (1 + cos(pi t / T)) / 2 over the T steps of all epochs (SimSiam); the
    predictor's group stays at lr when fix_pred_lr."""
    steps = _watch_steps(monkeypatch)
    cfg = _cfg(0.5, optim=OptimConfig(epochs=EPOCHS, batch_size=BATCH, base_lr=0.08, fix_pred_lr=fix_pred_lr))
    history = loop.pretrain(cfg, _splits(), progress=False).history
    total = EPOCHS * STEPS_PER_EPOCH
    assert len(steps) == total
    lr = cfg.optim.lr
    for t, seen in enumerate(steps):
        cosine = lr * 0.5 * (1 + math.cos(math.pi * t / total))
        rest, predictor = seen["lrs"]
        assert rest == pytest.approx(cosine, rel=1e-12)
        assert predictor == pytest.approx(lr if fix_pred_lr else cosine, rel=1e-12)
        assert seen["groups"][1] == seen["predictor"]  # the fixed group is exactly the predictor
    assert [epoch["lr"] for epoch in history] == [steps[(e + 1) * STEPS_PER_EPOCH - 1]["lrs"][0] for e in range(EPOCHS)]


def test_the_model_trains_in_train_mode_after_each_epochs_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-epoch kNN monitor runs the encoder in eval mode; the next epoch must train with
    BatchNorm in train mode again."""
    steps = _watch_steps(monkeypatch)
    loop.pretrain(_cfg(0.5, optim=OptimConfig(epochs=3, batch_size=BATCH)), _splits(), progress=False)
    assert len(steps) == 3 * STEPS_PER_EPOCH
    assert [seen["training"] for seen in steps] == [True] * len(steps)


@pytest.mark.parametrize("cpu_bf16", [False, True])
def test_cpu_bf16_pretrains_the_encoder_in_bfloat16_and_evaluates_in_float32(
    monkeypatch: pytest.MonkeyPatch, cpu_bf16: bool
) -> None:
    """cpu_bf16 puts the pre-training steps (not the monitor) under bfloat16 autocast on the CPU."""
    dtypes: list[tuple[bool, torch.dtype]] = []
    _watch_encoder(
        monkeypatch,
        lambda encoder: encoder.register_forward_hook(
            lambda module, inputs, out: dtypes.append((module.training, out.dtype))
        ),
    )
    loop.pretrain(_cfg(0.5, cpu_bf16=cpu_bf16), _splits(), progress=False)
    trained = torch.bfloat16 if cpu_bf16 else torch.float32
    assert {dtype for training, dtype in dtypes if training} == {trained}
    assert {dtype for training, dtype in dtypes if not training} == {torch.float32}


def test_finetuning_leaves_the_pretrained_encoder_untouched() -> None:
    """Fine-tuning trains a copy: the encoder that the linear probes and kNN use afterwards, and
    every later fraction's fine-tuning, start from the same pre-trained weights."""
    data = _splits()
    cfg = dataclasses.replace(_cfg(0.5), eval=EvalConfig(finetune_steps=5, finetune_lr=0.5))
    model = loop.build_model(cfg, data, torch.device("cpu"))
    encoder = model.encoder.train()
    before = _state(encoder)
    accuracy = finetune(encoder, model.feat_dim, data.train, data.test, 10, cfg, torch.device("cpu"), batch_size=32)
    assert 0 <= accuracy <= 1
    assert _changed(before, encoder) == []
    assert encoder.training


def test_a_checkpoint_written_before_a_config_field_existed_resumes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A field added later (siamese_noise) reads as its default in an older checkpoint, whose
    run computed exactly that: the run continues instead of refusing a 'different configuration'."""
    data, path = _splits(), tmp_path / "checkpoint.pt"
    first = _cfg(0.5, optim=OptimConfig(epochs=1, batch_size=BATCH, base_lr=0.05))
    loop.pretrain(first, data, checkpoint_path=path, progress=False)
    state = torch.load(path, weights_only=True)
    del state["config"]["siamese_noise"]
    torch.save(state, path)
    longer = dataclasses.replace(first, optim=dataclasses.replace(first.optim, epochs=2))
    assert len(loop.pretrain(longer, data, checkpoint_path=path, progress=False).history) == 2
