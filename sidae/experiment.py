"""One SidAE experiment: load data, pre-train, evaluate, write results.json.

Test-set numbers (`linear`, `finetune`, `knn`) are final figures; `val_linear` (probes trained
on the labelled pool, scored on the validation split) is what model selection may look at.
`controls` (sidae.controls) are the same test-set linear probes on the untrained encoder and on
raw pixels: what `linear` has to beat. `phase_seconds` says where the run's time went
(sidae.timing names the phases, and `controls` here).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sidae.batchnorm import evaluation_encoder
from sidae.checkpoint import write_atomic
from sidae.config import SidAEConfig
from sidae.controls import controls as control_scores
from sidae.data import DataSplits, load_splits
from sidae.evaluate import (
    extract_features,
    finetune,
    fraction_key,
    knn_accuracy,
    knn_bank_index,
    label_subset,
    linear_probes,
)
from sidae.model import SidAE
from sidae.pretraining import EpochCallback, build_model, pretrain, resolve_device
from sidae.timing import PhaseTimer, say

RESULTS_FILE = "results.json"
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class RunResult:
    config: SidAEConfig
    history: list[dict[str, float]]
    knn: float
    linear: dict[str, float]
    val_linear: dict[str, float]
    finetune: dict[str, float] = field(default_factory=dict)
    # sidae.controls: {"untrained": {fraction: test acc}, "pixels": {...}}; empty when not computed
    controls: dict[str, dict[str, float]] = field(default_factory=dict)
    device: str = "cpu"
    wall_seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)  # sidae.timing; all but results_file in wall
    model: SidAE | None = field(default=None, repr=False)  # the pre-trained model, not serialised

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "history": self.history,
            "knn": self.knn,
            "linear": self.linear,
            "val_linear": self.val_linear,
            "finetune": self.finetune,
            "controls": self.controls,
            "device": self.device,
            "wall_seconds": self.wall_seconds,
            "phase_seconds": self.phase_seconds,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunResult:
        """The result to_dict wrote (results.json), without the model."""
        return cls(**{**values, "config": SidAEConfig.from_dict(values["config"])})


def finished(out_dir: Path, cfg: SidAEConfig) -> RunResult | None:
    """The result a run of exactly `cfg` wrote to out_dir (its results.json), or None: none there,
    unreadable, or of another configuration."""
    try:
        result = RunResult.from_dict(json.loads((out_dir / RESULTS_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same = json.dumps(result.config.to_dict(), sort_keys=True) == json.dumps(cfg.to_dict(), sort_keys=True)
    return result if same else None


def evaluate(
    model: SidAE,
    data: DataSplits,
    cfg: SidAEConfig,
    device: torch.device,
    *,
    timer: PhaseTimer | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """kNN and linear probes on frozen features (each image encoded once), then fine-tuning.

    Only the labelled images some probe or the kNN bank uses are encoded: with small label
    fractions that is a small part of the pool. `timer` gets the phases eval_features,
    linear_probes and finetune; with progress, a line starts each."""
    timer = timer or PhaseTimer()
    fractions = cfg.eval.label_fractions
    with timer("eval_features"):
        subsets = [label_subset(data.train.labels, f, cfg.seed) for f in fractions]
        bank = knn_bank_index(len(data.train), cfg.eval.knn_bank_size, cfg.seed)
        needed = torch.unique(torch.cat([bank, *subsets]))
        say(
            progress,
            f"evaluation: encoding {len(needed) + len(data.val) + len(data.test):,} images "
            "(labelled, validation, test) and the test kNN",
        )
        encoder = evaluation_encoder(model.encoder, data, cfg, device)
        pool_x = torch.zeros(len(data.train), model.feat_dim, device=device)
        pool_x[needed.to(device)] = extract_features(encoder, data.train.images[needed], device)
        val_x = extract_features(encoder, data.val.images, device)
        test_x = extract_features(encoder, data.test.images, device)
        pool_y, val_y, test_y = (s.labels.to(device) for s in (data.train, data.val, data.test))
        bank = bank.to(device)
        out: dict[str, Any] = {
            "knn": knn_accuracy(pool_x[bank], pool_y[bank], test_x, test_y, k=cfg.eval.knn_k),
            "linear": {},
            "val_linear": {},
            "finetune": {},
        }
    if cfg.eval.linear:
        with timer("linear_probes"):
            say(progress, f"evaluation: linear probes at {_fractions(fractions)} of the labels")
            probes = linear_probes(
                pool_x, pool_y, {"test": (test_x, test_y), "val": (val_x, val_y)}, fractions, cfg.seed
            )
        out["linear"], out["val_linear"] = probes["test"], probes["val"]
    if cfg.eval.finetune:
        with timer("finetune"):
            out["finetune"] = finetune_fractions(model, data, cfg, device, progress=progress)
    return out


def _fractions(fractions: tuple[float, ...]) -> str:
    return ", ".join(f"{f * 100:g} %" for f in fractions)


def finetune_fractions(
    model: SidAE, data: DataSplits, cfg: SidAEConfig, device: torch.device, *, progress: bool = False
) -> dict[str, float]:
    """Test accuracy after fine-tuning the model's encoder (plus a linear head) on each label
    fraction of the training set; with progress, a line starts each run."""
    scores = {}
    for i, fraction in enumerate(cfg.eval.label_fractions):
        labelled = data.train.subset(label_subset(data.train.labels, fraction, cfg.seed))
        say(
            progress,
            f"evaluation: fine-tuning {i + 1}/{len(cfg.eval.label_fractions)}: {len(labelled):,} "
            f"labelled images ({fraction * 100:g} % of the labels), {cfg.eval.finetune_steps} steps",
        )
        scores[fraction_key(fraction)] = finetune(
            model.encoder, model.feat_dim, labelled, data.test, data.num_classes, cfg, device
        )
    return scores


def supervised_baseline(cfg: SidAEConfig, data: DataSplits) -> dict[str, float]:
    """The reason to pre-train at all: the same backbone fine-tuned from a random initialisation
    on the same labels, with the same steps, augmentations and seed."""
    device = resolve_device(cfg.device)
    return finetune_fractions(build_model(cfg, data, device), data, cfg, device)


def run(
    cfg: SidAEConfig,
    *,
    out_dir: Path | None = None,
    callback: EpochCallback | None = None,
    data: DataSplits | None = None,
    progress: bool = True,
    controls: bool = True,
) -> RunResult:
    """Pre-train and evaluate: the whole experiment one results.json records.

    Args:
        cfg: the configuration; its data are read from cfg.data.data_dir, else $SIDAE_DATA_DIR, else ./data.
        out_dir: where to checkpoint every epoch (a rerun resumes) and write results.json; None: nothing is written.
        callback: receives each epoch's metrics (sidae.pretraining.pretrain); it may raise to stop the run.
        data: splits already loaded (load_splits(cfg.data)); a study reads them once for all its trials.
        progress: a bar per pre-training epoch and a line for each later phase (monitor, probes, each
            fine-tuning run, the controls); without it, silent.
        controls: with cfg.eval.linear, also the untrained-encoder and raw-pixel probes (phase "controls",
            after the evaluation, so they change none of its numbers); a study computes them once per seed
            instead, and its trials pass False.

    Returns:
        The RunResult, with the pre-trained model; the same, less the model, as results.json in out_dir.

    One epoch on 512 images, probes at 1 % of the labels, no fine-tuning (half a minute on a CPU):

    >>> import tempfile
    >>> from pathlib import Path
    >>> from sidae.config import default_config, override
    >>> cfg = override(default_config("mnist", device="cpu"), {
    ...     "optim.epochs": 1, "data.train_limit": 512, "data.val_size": 500, "data.download": False,
    ...     "eval.label_fractions": (0.01,), "eval.knn_bank_size": 500, "eval.finetune": False})
    >>> with tempfile.TemporaryDirectory() as out_dir:
    ...     result = run(cfg, out_dir=Path(out_dir), progress=False, controls=False)
    ...     sorted(path.name for path in Path(out_dir).iterdir())
    ['checkpoint.pt', 'results.json']
    >>> len(result.history), sorted(result.linear), result.finetune, result.controls
    (1, ['0.01'], {}, {})
    >>> 0.0 <= result.linear["0.01"] <= 1.0 and 0.0 <= result.knn <= 1.0
    True
    """
    start = time.perf_counter()
    timer = PhaseTimer()
    if data is None:
        with timer("data_load"):
            data = load_splits(cfg.data)
    checkpoint_path = out_dir / CHECKPOINT_FILE if out_dir is not None else None
    trained = pretrain(cfg, data, callback=callback, checkpoint_path=checkpoint_path, progress=progress)
    timer.merge(trained.phase_seconds)
    scores = evaluate(trained.model, data, cfg, trained.device, timer=timer, progress=progress)
    if controls and cfg.eval.linear:
        with timer("controls"):
            say(
                progress,
                f"controls: untrained encoder and raw pixels, linear probes at {_fractions(cfg.eval.label_fractions)}",
            )
            scores["controls"] = control_scores(cfg, data, trained.device)
    result = RunResult(
        cfg,
        trained.history,
        device=str(trained.device),
        wall_seconds=time.perf_counter() - start,
        phase_seconds=timer.seconds,
        model=trained.model,
        **scores,
    )
    if out_dir is not None:
        with timer("results_file"):  # lands in result.phase_seconds, not in the file it times
            out_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(out_dir / RESULTS_FILE, json.dumps(result.to_dict(), indent=2).encode())
    return result
