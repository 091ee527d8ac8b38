"""Seconds to decode an image folder against seconds to load it back from sidae's cache.

sidae.image_folder reads an image folder (train/ and test/, one folder per class) by decoding
every file once into uint8 tensors and caching them (sidae.image_folder.cache_dir()); every later run, and
every trial process of a study, loads the cache instead. This times both on the CIFAR-10 JPEG
copy (60,000 files of 32x32; <data_dir>/CIFAR10-JPEG, --data-dir or $SIDAE_DATA_DIR):
- decode: sidae.image_folder.decode_images on all files (what a cold cache costs), plus
  decode_images_per_second;
- cached_load: sidae.data.load_splits on a warm cache, the whole of what a run waits for
  (listing and stat of the files for the cache key, reading the cache, the validation split,
  channel statistics). Target: <= 2 s on 2 cores.
The cache goes to a fresh temporary SIDAE_CACHE_DIR, so the user's own cache is not touched.
Figures are medians of --repeats runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from common import emit, parser, setup

from sidae.config import DataConfig
from sidae.data import data_root, load_splits
from sidae.image_folder import decode_images, list_image_folder
from sidae.image_set import DataError


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = parser(__doc__, timing=False)
    p.add_argument("--data-dir", help="folder holding CIFAR10-JPEG/ (default $SIDAE_DATA_DIR, else ./data)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per figure; the median is printed")
    args = p.parse_args()
    setup(args)
    folder = data_root(args.data_dir) / "CIFAR10-JPEG"
    if not folder.is_dir():
        # `make bench` runs on any machine: the other benchmarks need no CIFAR-10 copy.
        print(f"image_folder_cache.py: skipped, no image folder at {folder} (train/ and test/, one folder per class)")
        return
    cfg = DataConfig(dataset="cifar10-jpeg", data_dir=args.data_dir, download=False)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SIDAE_CACHE_DIR"] = cache
        try:
            listings = [list_image_folder(folder / s, cfg.dataset) for s in ("train", "test")]
            load_splits(cfg)  # decodes and writes the cache; also warms the page cache for the timed decode
        except DataError as error:
            sys.exit(f"image_folder_cache.py: {error}")
        files = sum(len(listing.paths) for listing in listings)
        decode = median_seconds(lambda: [decode_images(x.paths, cfg.image_size) for x in listings], args.repeats)
        cached = median_seconds(lambda: load_splits(cfg), args.repeats)
    emit("files", files)
    emit("decode_seconds", decode)
    emit("decode_images_per_second", files / decode)
    emit("cached_load_seconds", cached)
    emit("cached_load_speedup", decode / cached)


if __name__ == "__main__":
    main()
