"""Write a study's report: `python studies/report.py --name w-sweep-mnist --out reports/w-sweep`.

DIR/report.md with PNG figures beside it. For any study: the best trials, parameter importances,
the learning curves of the top trials and the best trial's clean / noised / reconstructed
images. For a w-sweep also: test accuracy against w (one line per label fraction, mean and
spread over seeds) and the paper's "method x label fraction" tables for linear evaluation and
fine-tuning, best per column in bold, with the controls, and the primary verdict with its design,
error rate and power. On a study that is still running it reports the trials complete so far,
and says so.

`--name A --name B` compares w-sweeps in one report instead: their tables side by side, one
w-plot with all of them, their verdict rows next to each other.

This module parses and dispatches; the reports are written by studies.analysis.reports (one
study) and studies.analysis.comparison (several).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna

from sidae.arguments import Parser, bounded
from sidae.errors import UserError, exit_on, print_warnings
from storage import artifact_dir_for, default_url
from studies.analysis.comparison import write_comparison
from studies.analysis.reports import write_report
from studies.analysis.stored import StoredStudyError, load_existing_study, open_existing_storage, unfinished


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python studies/report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--name",
        required=True,
        action="append",
        help="the study's name in the storage, e.g. w-sweep-mnist; give it again for each further "
        "w-sweep to compare them in one report (tables, w-plot and verdicts side by side)",
    )
    p.add_argument("--out", required=True, type=Path, help="folder for report.md and the figures (created)")
    p.add_argument("--storage", help="the study storage URL (default: studies.db in the current folder)")
    p.add_argument("--artifact-dir", help="the study's artifact folder (default: beside the SQLite file)")
    p.add_argument(
        "--top",
        type=bounded(int, minimum=1),
        default=5,
        help="how many of the best trials to list and plot, >= 1 (default 5)",
    )
    return p


def compare(storage: optuna.storages.BaseStorage, url: str, names: list[str], out: Path) -> int:
    """`--name A --name B ...`: one report of the studies side by side (studies.analysis.comparison)."""
    if len(set(names)) < len(names):
        raise StoredStudyError("each --name once: " + ", ".join(names))
    studies = [load_existing_study(storage, name) for name in names]
    path = write_comparison(studies, url, out)
    still = [s.study_name for s in studies if unfinished(s)]
    print(f"wrote {path}" + (f" ({', '.join(still)} still running: complete trials only)" if still else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python studies/report.py ARGS`: write a stored study's report (or several side by side).

    Args:
        argv: the command line without the program name; None: sys.argv[1:].

    Returns:
        The exit status: 0 with report.md and its figures in --out, 2 after one `error:` line on
        stderr (no such database or study, a folder it cannot write).

    >>> main(["--storage", "sqlite:////nowhere/studies.db", "--name", "w-sweep-mnist", "--out", "report"])
    2
    """
    print_warnings()
    args = parser().parse_args(argv)
    url = args.storage or default_url()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_existing_storage(url)
        if len(args.name) > 1:
            return compare(storage, url, args.name, args.out)
        study = load_existing_study(storage, args.name[0])
        path = write_report(study, url, artifact_dir_for(url, args.artifact_dir), args.out, args.top)
    except UserError as error:
        return exit_on(error)
    except OSError as error:  # --out is a file, or not writable
        print(f"error: cannot write the report in {args.out}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"wrote {path}" + (" (the study is still running: complete trials only)" if unfinished(study) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
