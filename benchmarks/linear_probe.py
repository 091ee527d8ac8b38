"""Seconds for the full linear-probe matrix on MNIST, as sidae's evaluation runs it.

A freshly initialised default MNIST model (sidae.pretraining.build_model) encodes the 55k labelled
pool (60k minus the 5k validation split) and the 10k test images once
(sidae.evaluate.extract_features); then sidae.evaluate.linear_probes fits a logistic-regression
probe, with its L2 strength chosen on held-out labels, for each label fraction (0.01, 0.1, 1.0).
Target: total <= 30 s on 2 CPU cores. Needs real MNIST in $SIDAE_DATA_DIR.
"""

from __future__ import annotations

import sys
import time

from common import emit, parser, setup, synchronize

from sidae.config import DataConfig, default_config
from sidae.data import load_splits
from sidae.evaluate import extract_features, fraction_key, linear_probes
from sidae.image_set import DataError
from sidae.pretraining import build_model


def main() -> None:
    device = setup(parser(__doc__, timing=False).parse_args())
    cfg = default_config("mnist")
    try:
        data = load_splits(DataConfig(dataset="mnist", download=False))
    except DataError as error:
        sys.exit(f"linear_probe.py: {error}")
    model = build_model(cfg, data, device)
    start = time.perf_counter()
    pool_x = extract_features(model.encoder, data.train.images, device)
    test_x = extract_features(model.encoder, data.test.images, device)
    synchronize(device)
    features = time.perf_counter()
    pool_y, test_y = data.train.labels.to(device), data.test.labels.to(device)
    accuracy = linear_probes(pool_x, pool_y, {"test": (test_x, test_y)}, cfg.eval.label_fractions, cfg.seed)["test"]
    end = time.perf_counter()
    emit("pool_images", len(data.train))
    emit("test_images", len(data.test))
    emit("feature_extraction_seconds", features - start)
    emit("linear_probe_seconds", end - features)
    emit("total_seconds", end - start)
    for fraction in cfg.eval.label_fractions:
        emit(f"linear_accuracy_{fraction_key(fraction)}", accuracy[fraction_key(fraction)])


if __name__ == "__main__":
    main()
