"""End to end: the CLI pre-trains and evaluates on real MNIST, is reproducible, resumes, and
rejects bad input with one line and a non-zero exit."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sidae.config import DataConfig, EvalConfig, OptimConfig, default_config
from sidae.data import load_splits
from sidae.pretraining import TrainingDiverged, pretrain
from sidae.train import main
from tests.conftest import REPO

TINY = ["--train-limit", "512", "--val-size", "500", "--batch-size", "128", "--finetune-steps", "100"]


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidae.train", "--data-dir", str(data_dir), "--no-download", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_cli_prints_each_long_phase_and_writes_results_with_accuracy_above_chance(
    tmp_path: Path, mnist_dir: Path
) -> None:
    """One run of the command as a user starts it, on its defaults but for the run's size (images,
    epochs, batch, fine-tuning steps): the three label fractions, fine-tuning and the controls."""
    out = tmp_path / "run"
    done = _cli("--w", "0.5", "--epochs", "2", *TINY, "--out", str(out), data_dir=mnist_dir)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["w"] == 0.5
    assert len(results["history"]) == 2
    epoch = results["history"][0]
    assert {"loss", "loss_siam", "loss_rec", "knn_acc", "collapse_std"} <= set(epoch)
    assert -1 <= epoch["loss_siam"] <= 1 and epoch["loss_siam"] != 0 and epoch["loss_rec"] > 0  # both terms ran
    for table in ("linear", "finetune"):
        assert set(results[table]) == {"0.01", "0.1", "1"}
        assert all(0.3 < acc <= 1.0 for acc in results[table].values())  # chance is 0.1
    # the controls: the same probe on the untrained encoder and on raw pixels (tests/test_controls.py)
    assert {name: set(scores) for name, scores in results["controls"].items()} == {
        "untrained": set(results["linear"]),
        "pixels": set(results["linear"]),
    }
    assert "linear" in done.stdout and "1%" in done.stdout
    # a line on stderr for each long phase (the progress bars' carriage returns end lines too)
    lines = [line.strip() for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    for expected in (
        "epoch 1/2: loss",
        "epoch 2/2: loss",
        "evaluation: encoding",
        "evaluation: linear probes at 1 %, 10 %, 100 % of the labels",
        "evaluation: fine-tuning 1/3",
        "evaluation: fine-tuning 3/3",
        "controls: untrained encoder and raw pixels",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert "kNN monitor" in done.stderr  # the status while it runs
    time_line = next(line for line in done.stdout.splitlines() if line.startswith("time: "))
    assert "pre-training" in time_line and "linear probes" in time_line and "fine-tuning" in time_line


def _tiny_cfg(mnist_dir: Path, **kw: object):  # type: ignore[no-untyped-def]
    data = DataConfig(dataset="mnist", data_dir=str(mnist_dir), train_limit=256, val_size=200, download=False)
    return default_config(
        "mnist", data=data, optim=OptimConfig(epochs=2, batch_size=64), eval=EvalConfig(knn_bank_size=500), **kw
    )


def test_same_seed_same_result(mnist_dir: Path) -> None:
    cfg = _tiny_cfg(mnist_dir, w=0.5, seed=7)
    data = load_splits(cfg.data)
    a, b = (_without_timings(pretrain(cfg, data, progress=False).history) for _ in range(2))
    assert a == b
    c = _without_timings(pretrain(dataclasses.replace(cfg, seed=8), data, progress=False).history)
    assert c[0]["loss"] != a[0]["loss"]


class _Crash(Exception):
    pass


def _crash_after_first_epoch(metrics: dict[str, float]) -> None:
    if metrics["epoch"] == 1:
        raise _Crash


def _without_timings(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in epoch.items() if k not in ("train_seconds", "images_per_second")} for epoch in history]


@pytest.mark.parametrize("normalize_losses", [False, True])
def test_resume_after_a_crash_equals_an_uninterrupted_run(
    tmp_path: Path, mnist_dir: Path, normalize_losses: bool
) -> None:
    cfg = _tiny_cfg(mnist_dir, w=0.5, normalize_losses=normalize_losses)
    data = load_splits(cfg.data)
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(_Crash):
        pretrain(cfg, data, checkpoint_path=ckpt, progress=False, callback=_crash_after_first_epoch)
    seen: list[float] = []
    resumed = pretrain(cfg, data, checkpoint_path=ckpt, progress=False, callback=lambda m: seen.append(m["epoch"]))
    assert seen == [2]  # epoch 1 came from the checkpoint
    straight = pretrain(cfg, data, progress=False)
    assert _without_timings(resumed.history) == _without_timings(straight.history)
    for (name, p), q in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    other = dataclasses.replace(cfg, w=0.9)
    with pytest.raises(ValueError, match="different configuration"):
        pretrain(other, data, checkpoint_path=ckpt, progress=False)


def test_absurd_learning_rate_is_reported_as_divergence(mnist_dir: Path) -> None:
    cfg = dataclasses.replace(_tiny_cfg(mnist_dir, w=0.0), optim=OptimConfig(epochs=1, batch_size=64, base_lr=1e12))
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        pretrain(cfg, load_splits(cfg.data), progress=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--w", "1.5"], "w must be in [0, 1]"),
        (["--noise-level", "-1"], "noise level must be >= 0"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--label-fractions", "0.01,2"], "label fraction must be in (0, 1]"),
        (["--backbone", "vit"], "unknown backbone 'vit'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    tmp_path: Path, mnist_dir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (no interpreter start, no torch import); the case below runs the real
    command line."""
    code = main([*args, "--data-dir", str(mnist_dir), "--no-download", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"error: {message}" or message in err.strip().splitlines()[-1]
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_missing_data_is_one_line_and_nonzero(tmp_path: Path) -> None:
    done = _cli("--epochs", "1", data_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: mnist: no files in")
    assert len(done.stderr.strip().splitlines()) == 1


def test_checkpoint_is_never_half_written(tmp_path: Path) -> None:
    from sidae.checkpoint import load, save_atomic

    path = tmp_path / "ckpt.pt"
    save_atomic({"a": torch.ones(3)}, path)
    assert torch.equal(load(path, torch.device("cpu"))["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_the_fair_arm_flags_set_their_config_fields() -> None:
    from sidae.train import config_from_args, parser

    flags = ["--dataset", "cifar10", "--device", "cpu", "--no-siamese-noise", "--recompute-bn"]
    cfg = config_from_args(parser().parse_args([*flags, "--decoder-input", "feature_map"]))
    assert (cfg.siamese_noise, cfg.eval.recompute_bn, cfg.model.decoder_input) == (False, True, "feature_map")
    default = config_from_args(parser().parse_args(["--dataset", "cifar10", "--device", "cpu"]))
    assert (default.siamese_noise, default.eval.recompute_bn, default.model.decoder_input) == (True, False, "pooled")
