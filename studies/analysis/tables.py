"""The cells and tables of the reports: accuracies as "mean ± std" in percent, the paper's
"method x label fraction" table of one study, and the same table for several studies side by side.
A single study's report (studies.analysis.reports) and a comparison (studies.analysis.comparison)
print the same cells."""

from __future__ import annotations

from studies.analysis.controls import CONTROL_NAMES
from studies.analysis.summary import (
    CONTROLS,
    SUPERVISED,
    Spread,
    column_best,
    fraction_label,
    fractions_of,
    marked,
    method_name,
)


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def paper_table(table: dict[str, dict[float, Spread]]) -> list[str]:
    """One row per method (by w: DAE first, SimSiam last, then the supervised baseline or the
    controls), one column per label fraction, the best mean of each column in bold (never a
    control's: summary.column_best)."""
    fractions, best = fractions_of(table), column_best(table)
    seeds = max(s.n for row in table.values() for s in row.values())
    lines = [
        "| method | " + " | ".join(f"{fraction_label(f)} labels" for f in fractions) + " |",
        "|---|" + "---:|" * len(fractions),
    ]
    for method, row in table.items():
        cells = [cell(row.get(f), seeds, marked(method, row.get(f), best, f)) for f in fractions]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def cell(value: Spread | None, seeds: int, best: bool) -> str:
    """Accuracy in percent, mean ± std over seeds; (n=k) where fewer of the seeds are complete;
    bold when `best` (summary.marked: the best of its column)."""
    if value is None:
        return "-"
    text = f"{pct(value.mean)} ± {pct(value.std)}" if value.n > 1 else pct(value.mean)
    text = text if value.n == seeds else f"{text} (n={value.n})"
    return f"**{text}**" if best else text


def control_sentence() -> str:
    """What the linear tables' control rows are (a single study's report and a comparison)."""
    untrained, pixels = (f"`{CONTROL_NAMES[name]}`" for name in ("untrained", "pixels"))
    return (
        f"{untrained} and {pixels}: the same linear probe, on the same labels and seeds, on the backbone at the "
        "initial weights each seed's trials start from (no training at all) and on the images' pixels (no "
        "encoder): what a pre-trained encoder has to beat to have learnt anything a linear probe can use. "
        "They are never in bold: the bold cell is the best pre-training method."
    )


def side_by_side(tables: dict[str, dict[str, dict[float, Spread]]], ws: list[float]) -> list[str]:
    """One row per method (the w in `ws`, then the supervised baseline and the controls), for
    each label fraction one column per study; each column's best mean in bold (never a
    control's) and (n=k) where fewer seeds are complete, as in a single study's table; '-' where
    a study lacks the cell."""
    best = {name: column_best(table) for name, table in tables.items()}
    fractions = sorted({f for columns in best.values() for f in columns})
    extra = [m for m in (SUPERVISED, *CONTROLS) if any(m in t for t in tables.values())]
    methods = [method_name(w) for w in ws] + extra
    columns = [(f, name) for f in fractions for name in tables]
    seeds = {
        name: max((s.n for row in table.values() for s in row.values()), default=0) for name, table in tables.items()
    }
    lines = [
        "| method | " + " | ".join(f"{fraction_label(f)} labels, {name}" for f, name in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for method in methods:
        values = [(tables[name].get(method, {}).get(f), name, f) for f, name in columns]
        cells = [cell(v, seeds[name], marked(method, v, best[name], f)) for v, name, f in values]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines
