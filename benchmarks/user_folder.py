"""Write an image folder shaped like a user's, from real photographs: the CIFAR-10 JPEG copy's
images re-saved at mixed sizes (32 to 96 pixels a side, some not square), as JPEG or PNG, a few
in grayscale, with uneven classes. `--dataset imagefolder` then reads it as a user's folder.

    .venv/bin/python benchmarks/user_folder.py --out runs/user-folder
    .venv/bin/python studies/run.py --study w-sweep --dataset imagefolder --data-dir runs/user-folder \\
        --w-grid 0.5 --seeds 0 --storage sqlite:///runs/user-folder.db

Prints what it wrote: images per class and split, sizes, formats, grayscale count.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from PIL import Image

# Classes and training images per class: uneven, as a user's labels are (the largest 8x the smallest).
TRAIN_PER_CLASS = {"airplane": 2400, "cat": 1600, "ship": 1000, "frog": 600, "truck": 300}
TEST_PER_CLASS = 200
SIDES = (32, 40, 48, 64, 96)
GRAYSCALE_SHARE = 0.05


def write_image(source: Path, target_stem: Path, rng: random.Random) -> tuple[str, str, bool]:
    """One photograph re-saved as a user's file might be; its size, format and whether gray."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    width, height = rng.choice(SIDES), rng.choice(SIDES)
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    gray = rng.random() < GRAYSCALE_SHARE
    if gray:
        image = image.convert("L")
    suffix = rng.choice((".jpg", ".png"))
    image.save(target_stem.with_suffix(suffix))
    return f"{width}x{height}", suffix, gray


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=Path("../shared/data/CIFAR10-JPEG"), help="the CIFAR-10 JPEG copy")
    p.add_argument("--out", type=Path, required=True, help="the folder to write (<out>/{train,test}/<class>/)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    gray = 0
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", dict.fromkeys(TRAIN_PER_CLASS, TEST_PER_CLASS))):
        for name, n in per_class.items():
            sources = sorted((args.source / split / name).iterdir())[:n]
            folder = args.out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, source in enumerate(sources):
                size, suffix, was_gray = write_image(source, folder / f"{i:05d}", rng)
                counts[f"{split}/{name}"] += 1
                sizes[size] += 1
                formats[suffix] += 1
                gray += was_gray
    summary = {"images": dict(counts), "formats": dict(formats), "grayscale": gray, "sizes": len(sizes)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
