"""The report's figures as PNG files: accuracy against w, parameter importances, learning
curves, and a trial's clean / noised / reconstructed grid with its rows named.

matplotlib's object API (`Figure`, no pyplot): no global figure state and no GUI backend, so it
runs headless and from threads. Each figure is rendered in memory and written atomically
(sidae.checkpoint.write_atomic: a temporary name beside it, flushed, renamed), so a full disk or a
crash keeps the previous report's figure whole instead of leaving half a PNG.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib.image
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial

from sidae.checkpoint import write_atomic
from studies.analysis.summary import BASELINES, Spread, fraction_label, fractions_of

DPI = 150
GRID_ROWS = ("clean", "noised", "reconstructed")
GRID_PADDING = 2  # pixels around each image in sidae.visualize's grid (torchvision make_grid)


def save(fig: Figure, path: Path, **options: Any) -> Path:
    """`fig` as a PNG at `path`, atomically: the old file or the new one, never half of one."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, **options)
    write_atomic(path, buffer.getbuffer())
    return path


def w_sweep_figure(
    panels: dict[str, dict[float, dict[float, Spread]]],
    title: str,
    path: Path,
    references: dict[str, dict[float, Spread]] | None = None,
) -> Path:
    """One panel per evaluation (e.g. "linear probe": summary.by_w's table), test accuracy
    against w, one line per label fraction: mean with a band of +- one std over seeds; the
    baselines' w (0: DAE, 1: SimSiam) marked. `references` (panel -> fraction -> spread) draws
    a method without w, the supervised baseline, as a dashed level in its fraction's colour."""
    fig = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (evaluation, table) in zip(axes, panels.items(), strict=True):
        for fraction in fractions_of(table):
            ws = [w for w, row in table.items() if fraction in row]
            spreads = [table[w][fraction] for w in ws]  # in percent below, as in the report's tables
            (line,) = ax.plot(
                ws, [100 * s.mean for s in spreads], marker="o", label=f"{fraction_label(fraction)} labels"
            )
            ax.fill_between(
                ws,
                [100 * (s.mean - s.std) for s in spreads],
                [100 * (s.mean + s.std) for s in spreads],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
            reference = (references or {}).get(evaluation, {}).get(fraction)
            if reference is not None:
                ax.axhline(
                    100 * reference.mean,
                    color=line.get_color(),
                    linestyle="--",
                    linewidth=1,
                    label=f"{fraction_label(fraction)}, supervised from scratch",
                )
        _w_axes(ax, table, evaluation, legend_fontsize=8)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


def _w_axes(ax: Axes, ws: Iterable[float], evaluation: str, legend_fontsize: int) -> None:
    """The w axis of an accuracy-against-w panel: the baselines marked at their w, ticks at the
    grid's values, labels, grid lines and the legend."""
    for w, name in BASELINES.items():
        ax.axvline(w, color="grey", linestyle=":", linewidth=1)
        ax.text(w, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(sorted(ws))
    ax.set_xlabel("w  (0: DAE, 1: SimSiam)")
    ax.set_ylabel(f"test accuracy (%), {evaluation}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_fontsize)


def importance_figure(importances: dict[str, float], title: str, path: Path) -> Path:
    names = list(reversed(importances))  # most important at the top
    fig = Figure(figsize=(6, 0.45 * len(names) + 1.4), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("importance for the objective (PED-ANOVA, as in optuna-dashboard)")
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def learning_curve_figure(trials: list[FrozenTrial], title: str, path: Path) -> Path:
    """The intermediate values (validation kNN accuracy per epoch) of `trials`."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    for trial in trials:
        epochs = sorted(trial.intermediate_values)
        ax.plot(
            epochs,
            [trial.intermediate_values[e] for e in epochs],
            marker=".",
            label=f"trial {trial.number} (objective {trial.value:.3f})",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation kNN accuracy")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def reconstruction_figure(grid_png: Path, title: str, path: Path) -> Path:
    """sidae.visualize's grid (three rows of images, in GRID_ROWS order) with its rows named."""
    image = matplotlib.image.imread(grid_png)
    row_height = (image.shape[0] - GRID_PADDING) / len(GRID_ROWS)
    aspect = image.shape[0] / image.shape[1]
    fig = Figure(figsize=(8, 8 * aspect + 0.6))
    ax = fig.subplots()
    ax.imshow(image, cmap="gray", interpolation="nearest")
    ax.set_yticks([GRID_PADDING / 2 + (i + 0.5) * row_height for i in range(len(GRID_ROWS))], GRID_ROWS)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)
    return save(fig, path, bbox_inches="tight")


STUDY_STYLES = ("-", "--", ":", "-.")  # one line style per compared study; colour stays per label fraction


def w_sweep_comparison_figure(
    studies: dict[str, dict[str, dict[float, dict[float, Spread]]]], title: str, path: Path
) -> Path:
    """w_sweep_figure for several studies in one: `studies` maps a study's name to its panels
    (evaluation -> summary.by_w's table); one panel per evaluation, colour per label fraction,
    line style and marker per study, each line with its band of +- one std over seeds."""
    evaluations = list(dict.fromkeys(e for panels in studies.values() for e in panels))
    fractions = sorted({f for panels in studies.values() for table in panels.values() for f in fractions_of(table)})
    colours = {f: f"C{i}" for i, f in enumerate(fractions)}
    fig = Figure(figsize=(6 * len(evaluations), 4.8), layout="constrained")
    axes = fig.subplots(1, len(evaluations), squeeze=False)[0]
    for ax, evaluation in zip(axes, evaluations, strict=True):
        ws: set[float] = set()
        for (name, panels), style, marker in zip(studies.items(), STUDY_STYLES * 4, "osD^v<>" * 2, strict=False):
            table = panels.get(evaluation, {})
            ws |= set(table)
            for fraction in fractions:
                points = [w for w, row in table.items() if fraction in row]
                if not points:
                    continue
                spreads = [table[w][fraction] for w in points]
                ax.plot(
                    points,
                    [100 * s.mean for s in spreads],
                    linestyle=style,
                    marker=marker,
                    color=colours[fraction],
                    label=f"{name}, {fraction_label(fraction)} labels",
                )
                ax.fill_between(
                    points,
                    [100 * (s.mean - s.std) for s in spreads],
                    [100 * (s.mean + s.std) for s in spreads],
                    color=colours[fraction],
                    alpha=0.12,
                    linewidth=0,
                )
        _w_axes(ax, ws, evaluation, legend_fontsize=7)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)
