"""The pictures by their content, not their file size: the trial's reconstruction grid
(sidae.visualize) holds the clean images, their noised copies and the decoder's output in that
order, and the report's figures (studies.analysis.figures) draw what they are given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sidae.config import SidAEConfig
from sidae.visualize import save_reconstruction_grid
from studies.analysis import figures
from studies.analysis.summary import Spread

PAD = 2  # torchvision make_grid's padding in sidae.visualize


def tiles(grid: np.ndarray, rows: int, columns: int, size: int) -> np.ndarray:
    """(rows, columns, size, size) first-channel pixels of a make_grid image."""
    step = size + PAD
    return np.stack(
        [
            np.stack(
                [
                    grid[PAD + r * step : PAD + r * step + size, PAD + c * step : PAD + c * step + size, 0]
                    for c in range(columns)
                ]
            )
            for r in range(rows)
        ]
    )


class Halving(torch.nn.Module):
    """A stand-in SidAE whose decoder output is easy to predict: encoder identity, decoder x / 2."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.encoder = torch.nn.Identity()

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * z / 2


def test_reconstruction_grid_holds_clean_noised_and_reconstructed_rows(tmp_path: Path) -> None:
    model = Halving()
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path = save_reconstruction_grid(model, images, SidAEConfig(), tmp_path / "grid.png")  # type: ignore[arg-type]
    with Image.open(path) as png:
        assert png.size == (4 * 30 + 2, 3 * 30 + 2)  # 4 columns, 3 rows, 2 px padding
        grid = np.asarray(png.convert("RGB"))
    clean, noised, reconstructed = tiles(grid, 3, 4, 28).astype(int)
    assert np.array_equal(clean, images[:, 0].numpy())  # the clean images, exactly, in the first row
    assert np.abs(noised - clean).mean() > 10  # corrupted (gaussian, level 0.3 of 255)
    assert np.abs(reconstructed - noised / 2).max() <= 1  # the decoder's output on the noised row
    assert model.training  # the picture leaves the model in training mode


def write_bands(path: Path, colours: list[tuple[int, int, int]], width: int = 62) -> None:
    """A make_grid-shaped PNG whose three rows are solid colours."""
    band = 30
    pixels = np.full((3 * band + PAD, width, 3), 255, dtype=np.uint8)
    for row, colour in enumerate(colours):
        pixels[PAD + row * band : (row + 1) * band, PAD : width - PAD] = colour
    Image.fromarray(pixels).save(path)


def centre_row(pixels: np.ndarray, colour: tuple[int, int, int]) -> float:
    """Mean row index of the pixels within 10 levels of `colour`."""
    match = (np.abs(pixels.astype(int) - colour) <= 10).all(axis=-1)
    assert match.sum() > 500, f"{colour} hardly drawn ({match.sum()} pixels)"
    return float(np.nonzero(match)[0].mean())


def test_reconstruction_figure_shows_the_grid_rows_top_down(tmp_path: Path) -> None:
    red, green, blue = (220, 20, 20), (20, 200, 20), (20, 20, 220)
    write_bands(tmp_path / "grid.png", [red, green, blue])
    out = figures.reconstruction_figure(tmp_path / "grid.png", "trial 3 (w=0.5)", tmp_path / "figure.png")
    with Image.open(out) as png:
        assert png.format == "PNG"
        pixels = np.asarray(png.convert("RGB"))
    assert centre_row(pixels, red) < centre_row(pixels, green) < centre_row(pixels, blue)  # clean on top


def test_w_sweep_figure_has_one_panel_per_evaluation_with_its_lines(tmp_path: Path) -> None:
    table = {w: {0.01: Spread(0.3 + 0.2 * w, 0.02, 3), 0.1: Spread(0.6, 0.01, 3)} for w in (0.0, 0.5, 1.0)}
    out = figures.w_sweep_figure({"linear probe": table, "fine-tune": table}, "w-sweep", tmp_path / "w.png")
    with Image.open(out) as png:
        assert png.size == (round(2 * 5.5 * figures.DPI), round(4.2 * figures.DPI))  # two panels side by side
        pixels = np.asarray(png.convert("RGB"))
    half = pixels.shape[1] // 2
    for panel in (pixels[:, :half], pixels[:, half:]):  # each panel draws both fractions' lines
        assert centre_row(panel, (31, 119, 180)) > 0  # matplotlib's first colour (tab:blue)
        assert centre_row(panel, (255, 127, 14)) > 0  # and its second (tab:orange)
