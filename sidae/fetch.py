"""Put data sets on disk before anything trains: `python -m sidae.fetch mnist fashion-mnist`.

What is missing is downloaded once, through torchvision's own classes (their mirrors, their
checksums, their progress bars), into the data folder: --data-dir, else $SIDAE_DATA_DIR, else
./data. Files already there are read, not downloaded again. A study's driver calls `fetch`
before it starts any worker, so that workers (which read with downloads off) never race to
download the same files.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from sidae.arguments import Parser
from sidae.config import DATASETS, DataConfig
from sidae.data import DataSplits, data_root, load_splits
from sidae.errors import UserError, exit_on


def fetch(cfg: DataConfig) -> DataSplits:
    """Read cfg's data set, downloading what is missing; DataError (one line) if that fails."""
    return load_splits(dataclasses.replace(cfg, download=True))


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m sidae.fetch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", metavar="DATASET", help=f"any of {', '.join(DATASETS)}")
    p.add_argument("--data-dir", help="data folder (default $SIDAE_DATA_DIR, else ./data)")
    args = p.parse_args(argv)
    root = data_root(args.data_dir).resolve()
    try:
        for name in args.datasets:
            splits = fetch(DataConfig(dataset=name, data_dir=str(root)))
            print(
                f"{name}: ready in {root} ({len(splits.train) + len(splits.val)} labelled training, "
                f"{len(splits.test)} test images)"
            )
    except UserError as error:
        return exit_on(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
