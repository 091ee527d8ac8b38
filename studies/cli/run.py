"""Run a named SidAE hyperparameter study: `python studies/run.py --study w-sweep`.

Trials are Optuna trials (sampling, storage, dashboard) scheduled by Ray Tune (local by default,
a cluster with --address). Rerunning the same command resumes the study: finished trials are
kept, trials a dead driver left RUNNING are marked FAIL and their configurations retried.
Browse the results with optuna-dashboard (the command is printed at the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import Any

import optuna

from sidae.arguments import Parser
from sidae.errors import UserError, exit_on, print_warnings
from storage import default_url
from studies.analysis.summary import best_summary, complete_trials, counts, w_sweep_table
from studies.analysis.verdict import verdict_lines
from studies.record import SPLITS
from studies.service.catalogue import STUDIES
from studies.service.notes import redacted_command
from studies.service.options import GROUPS, Flag, StudyOptions
from studies.service.runner import dashboard_command, run_study


def parser() -> argparse.ArgumentParser:
    """The command line, built from StudyOptions' declaration (one flag per field)."""
    p = Parser(prog="python studies/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    sections = {group: p.add_argument_group(group) for group in GROUPS}
    for f in declared_fields():
        flag: Flag = f.metadata["flag"]
        extra = {k: v for k, v in (("type", flag.type), ("action", flag.action), ("metavar", flag.metavar)) if v}
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        sections[flag.group].add_argument(
            flag.flag or "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None if default is dataclasses.MISSING else default,
            help=flag.help,
            **extra,
        )
    return p


def declared_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(StudyOptions) if "flag" in f.metadata]


def options(args: argparse.Namespace, argv: list[str]) -> StudyOptions:
    command = redacted_command(shlex.join([sys.executable, "-m", "studies.cli.run", *argv]))
    return StudyOptions(**{f.name: getattr(args, f.name) for f in declared_fields()}, command=command)


def list_studies() -> str:
    width = max(map(len, STUDIES))
    return "\n".join(f"{name:<{width}}  {study.summary}" for name, study in STUDIES.items())


def main(argv: list[str] | None = None) -> int:
    """`python studies/run.py ARGS`: run (or resume) a study and print its summary.

    Args:
        argv: the command line without the program name; None: sys.argv[1:].

    Returns:
        The exit status: 0 when the run ended (interrupted ones too: rerunning resumes them), 2
        on bad input or an unusable environment, after one `error:` line on stderr, with nothing
        written.

    >>> main(["--list"])  # doctest: +NORMALIZE_WHITESPACE
    w-sweep         w over a grid from 0 (DAE) to 1 (SimSiam), repeated seeds; every point runs to the end
    noised-simsiam  control arm: SimSiam (w = 1) with SidAE's noise on its views (noise_at_w1), per seed
    noise-sweep     noise kind (gaussian, mask, salt-pepper) and level at a fixed w (TPE, ASHA)
    augment-search  augmentation strengths: crop scale, jitter, rotation, translation, flips (TPE, ASHA)
    joint           w, noise, augmentations and learning rate together (TPE, ASHA)
    0
    >>> main(["--study", "w-sweep", "--w-grid", "0,2"])  # stderr: error: --w-grid values must be in [0, 1], ...
    2
    """
    print_warnings()
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.list:
        print(list_studies())
        return 0
    if not args.study:
        print("error: --study is required (see --list)", file=sys.stderr)
        return 2
    opts = options(args, argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = run_study(opts)
    except UserError as error:
        return exit_on(error)
    print(f"\n{opts.study_name}: {counts(study)}")
    splits = next((t.user_attrs[SPLITS] for t in complete_trials(study) if SPLITS in t.user_attrs), None)
    if splits:
        print(splits)  # the data every trial saw: split sizes, labelled images per fraction
    print(best_summary(study))
    if opts.study == "w-sweep":
        print("\ntest linear-probe accuracy by w (mean ± std over seeds; * best per column)")
        print(w_sweep_table(study, "test_linear"))
        if any(t.user_attrs.get("test_finetune") for t in study.trials):
            print("\ntest fine-tune accuracy by w")
            print(w_sweep_table(study, "test_finetune"))
        verdict = verdict_lines(study)
        if verdict:
            print("\n" + "\n".join(verdict))
    print(f"\nbrowse: {dashboard_command(opts.storage or default_url(), opts.artifact_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
