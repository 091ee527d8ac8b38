"""The controls (sidae.controls): the trials' linear probe on the untrained encoder at the seed's
initial weights and on raw pixels. In results.json beside `linear`, stored once per seed by a
study (studies.service.baseline), and shown as rows of the linear tables that never get the
best mark. Real MNIST, made small where the property does not need all of it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest
import torch

from sidae.config import DataConfig, EvalConfig, OptimConfig, SidAEConfig, default_config
from sidae.controls import PIXELS, UNTRAINED, controls, pixel_features, probe_on_test
from sidae.data import DataSplits, load_splits
from sidae.experiment import RESULTS_FILE, evaluate, run
from sidae.pretraining import build_model
from sidae.train import summary
from studies.analysis.controls import CONTROL_NAMES, control_scores
from studies.analysis.summary import Spread, column_best, marked, method_table, w_sweep_table
from studies.record import CONTROLS_ATTR, SUPERVISED_ATTR
from tests.multiseed_study import distributions

CPU = torch.device("cpu")


def tiny_config(mnist_dir: Path, seed: int = 0) -> SidAEConfig:
    data = DataConfig(dataset="mnist", data_dir=str(mnist_dir), train_limit=256, val_size=500, download=False)
    return default_config(
        "mnist",
        data=data,
        optim=OptimConfig(epochs=1, batch_size=64),
        eval=EvalConfig(label_fractions=(0.01, 0.1), finetune=False, knn_bank_size=500),
        device="cpu",
        seed=seed,
    )


@pytest.fixture(scope="module")
def small(mnist_dir: Path) -> DataSplits:
    """Real MNIST with a labelled pool of 5,000 and a test split of 2,000 (seeded picks)."""
    data = load_splits(tiny_config(mnist_dir).data)
    pick = torch.Generator().manual_seed(0)
    pool = torch.randperm(len(data.train), generator=pick)[:5000]
    test = torch.randperm(len(data.test), generator=pick)[:2000]
    return dataclasses.replace(data, train=data.train.subset(pool), test=data.test.subset(test))


def test_results_json_has_the_controls_with_the_linear_keys(tmp_path: Path, mnist_dir: Path, small: DataSplits) -> None:
    cfg = tiny_config(mnist_dir)
    result = run(cfg, out_dir=tmp_path, data=small, progress=False)
    saved = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert set(saved["controls"]) == {UNTRAINED, PIXELS}
    for scores in saved["controls"].values():
        assert set(scores) == set(saved["linear"]) == {"0.01", "0.1"}
        assert all(0.3 < accuracy <= 1 for accuracy in scores.values())  # chance is 0.1
    assert result.phase_seconds["controls"] > 0
    text = summary(result)
    assert "untrained" in text.splitlines()[1] and "pixels" in text.splitlines()[1] and "controls " in text
    # A study's trial (controls=False) computes none, and the controls change none of the run's numbers.
    trial = run(cfg, data=small, progress=False, controls=False)
    assert trial.controls == {} and "controls" not in trial.phase_seconds
    assert (trial.linear, trial.val_linear, trial.knn) == (result.linear, result.val_linear, result.knn)


def test_the_untrained_control_is_the_probe_of_the_initial_weights(mnist_dir: Path, small: DataSplits) -> None:
    cfg = tiny_config(mnist_dir, seed=0)
    first = controls(cfg, small, CPU)
    assert controls(cfg, small, CPU) == first  # the same seed: the same weights, labels and probes
    # what evaluate() gives the encoder a run of this seed starts from, before any training
    assert first[UNTRAINED] == evaluate(build_model(cfg, small, CPU), small, cfg, CPU)["linear"]
    other = controls(dataclasses.replace(cfg, seed=1), small, CPU)
    assert other[UNTRAINED] != first[UNTRAINED]  # other initial weights (and label subsets)


def test_the_pixel_control_on_real_mnist_at_10_percent(mnist_dir: Path) -> None:
    cfg = dataclasses.replace(tiny_config(mnist_dir), eval=EvalConfig(label_fractions=(0.1,), finetune=False))
    data = load_splits(cfg.data)  # the whole labelled pool and test split
    x = pixel_features(data.test.images[:4], CPU)
    assert x.shape == (4, 784) and 0 <= x.min() < x.max() <= 1
    accuracy = probe_on_test(lambda images: pixel_features(images, CPU), data, cfg, CPU)["0.1"]
    assert 0.85 < accuracy < 0.95  # logistic regression on MNIST pixels: about 0.91 at 10 % of the labels


def w_sweep_with_controls() -> optuna.Study:
    """An in-memory w-sweep: DAE and SimSiam on seeds 0 and 1, controls stored for seeds 0-2
    (the untrained encoder at 1 % only), raw pixels ahead of every method at 10 %."""
    study = optuna.create_study(direction="maximize")
    for seed in (0, 1):
        for w, (low, high) in ((0.0, (0.80, 0.90)), (1.0, (0.84, 0.92))):
            study.add_trial(
                optuna.trial.create_trial(
                    params={"seed": seed, "w": w},
                    distributions=distributions(),
                    value=0.5,
                    user_attrs={"test_linear": {"0.01": low + seed / 100, "0.1": high}, "test_finetune": {"0.01": 0.9}},
                )
            )
    study.set_user_attr(
        CONTROLS_ATTR,
        {
            str(seed): {UNTRAINED: {"0.01": 0.70 + seed / 100}, PIXELS: {"0.01": 0.83, "0.1": 0.95}}
            for seed in (0, 1, 2)
        },
    )
    study.set_user_attr(SUPERVISED_ATTR, {"0": {"0.01": 0.6}})
    return study


def test_the_tables_show_the_controls_and_never_mark_them_best() -> None:
    study = w_sweep_with_controls()
    assert control_scores(study, UNTRAINED) == {0: {0.01: 0.70}, 1: {0.01: 0.71}, 2: {0.01: 0.72}}
    table = method_table(study, study.trials, "test_linear")
    assert list(table) == ["DAE", "SimSiam", CONTROL_NAMES[UNTRAINED], CONTROL_NAMES[PIXELS]]
    assert table["untrained encoder"] == {0.01: Spread(pytest.approx(0.71), pytest.approx(0.01), 3)}
    assert table["raw pixels"][0.1] == Spread(pytest.approx(0.95), 0.0, 3)
    best = column_best(table)
    assert best == {0.01: pytest.approx(0.845), 0.1: 0.92}  # SimSiam's: raw pixels' 0.95 is not a contender
    assert marked("SimSiam", table["SimSiam"][0.1], best, 0.1)
    assert not marked("raw pixels", table["raw pixels"][0.1], best, 0.1)
    assert list(method_table(study, study.trials, "test_finetune")) == ["DAE", "SimSiam", "supervised"]
    lines = w_sweep_table(study, "test_linear").splitlines()
    simsiam, untrained, pixels = lines[2], lines[3], lines[4]
    assert simsiam.startswith("SimSiam ") and "*0.9200" in simsiam
    assert untrained.startswith("untrained encoder ") and "0.7100 ± 0.0100" in untrained and untrained.endswith(" 3")
    assert pixels.startswith("raw pixels ") and "0.9500" in pixels and "*" not in pixels


def test_missing_seeds_asks_for_the_controls_a_seed_lacks(tmp_path: Path) -> None:
    from studies.service.baseline import missing_seeds  # imports Ray
    from studies.service.budgets import BUDGETS
    from studies.service.trainable import TrialContext

    study = optuna.create_study()
    study.set_user_attr(SUPERVISED_ATTR, {"0": {"0.01": 0.6}, "1": {"0.01": 0.6}})
    study.set_user_attr(CONTROLS_ATTR, {"0": {UNTRAINED: {"0.01": 0.7}}, "2": {UNTRAINED: {"0.01": 0.7}}})
    points = [{"seed": seed, "w": w} for seed in (0, 1, 2, 3) for w in (0.0, 1.0)]
    for budget, wanted in (
        ("cpu", {"1": (False, True), "2": (True, False), "3": (True, True)}),  # fine-tunes: both kinds
        ("smoke", {"1": (False, True), "3": (False, True)}),  # no fine-tuning: only the controls
    ):
        ctx = TrialContext(dataset="mnist", budget=BUDGETS[budget], data_dir=str(tmp_path), run_root=str(tmp_path))
        missing = missing_seeds(study, ctx, points)
        assert {seed: (work.supervised, work.controls) for seed, work in missing.items()} == wanted, budget
        assert all(work.cfg.seed == int(seed) for seed, work in missing.items())
    # a confirmatory w-sweep's pilot seeds do not fine-tune: they lack only their controls
    ctx = TrialContext(
        dataset="mnist", budget=BUDGETS["cpu"], data_dir=str(tmp_path), run_root=str(tmp_path), pilot_seeds=(2, 3)
    )
    assert {seed: (w.supervised, w.controls) for seed, w in missing_seeds(study, ctx, points).items()} == {
        "1": (False, True),
        "3": (False, True),
    }
