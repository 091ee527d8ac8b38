"""Run a named SidAE hyperparameter study: `python studies/run.py --study w-sweep`.

Trials are Optuna trials (sampling, storage, dashboard) scheduled by Ray Tune (local by default,
a cluster with --address). Rerunning the same command resumes the study: finished trials are
kept, trials a dead driver left RUNNING are marked FAIL and their configurations retried.
Browse the results with optuna-dashboard (the command is printed at the end).
"""

from __future__ import annotations

import argparse
import ast
import shlex
import sys

import optuna

from sidae.arguments import Parser, bounded
from sidae.config import DATASETS, DEVICES, MAX_SEED
from sidae.errors import UserError, exit_on
from sidae.train import comma_separated
from storage import default_url
from studies.analysis.summary import best_summary, complete_trials, counts, w_sweep_table
from studies.analysis.verdict import verdict_lines
from studies.record import SPLITS
from studies.service.budgets import BUDGETS
from studies.service.catalogue import STUDIES
from studies.service.notes import redacted_command
from studies.service.options import SCHEDULERS, StudyOptions
from studies.service.runner import dashboard_command, run_study


def _assignment(text: str) -> tuple[str, object]:
    """--set KEY=VALUE: VALUE is a Python literal (0.5, True, 'mask') or else a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. w=0.9 or noise.kind=mask), got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python studies/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    p.add_argument("--study", help=f"which study: {', '.join(STUDIES)}")
    p.add_argument("--dataset", default="mnist", help=f"{', '.join(DATASETS)} (default mnist)")
    p.add_argument(
        "--budget", default="cpu", help=f"{', '.join(BUDGETS)} (default cpu: a w-sweep takes about 45 min on 2 cores)"
    )
    p.add_argument("--name", help="study name in the storage (default <study>-<dataset>)")
    p.add_argument(
        "--storage",
        help="sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB, the password in "
        "PGPASSWORD or a PGPASSFILE, not in the URL: Ray keeps the URL in its "
        "saved state (default: studies.db in the current folder)",
    )
    p.add_argument("--artifact-dir", help="where grids and checkpoints go (default: beside the SQLite file)")
    p.add_argument("--data-dir", help="data sets folder (default $SIDAE_DATA_DIR, else ./data)")
    g = p.add_argument_group("budget overrides")
    g.add_argument("--epochs", type=int, help="pre-training epochs per trial, >= 1")
    g.add_argument("--train-limit", type=int, help="pre-training images per trial, >= 1")
    g.add_argument("--trials", type=int, help="trials of a sampled (non-grid) study, >= 1")
    g.add_argument("--w-grid", type=comma_separated(float), help="w values of a w-sweep, e.g. 0,0.5,0.9,1")
    g.add_argument(
        "--seeds",
        type=comma_separated(bounded(int, minimum=0, maximum=MAX_SEED)),
        help="seeds each grid point is repeated with, 0 to 2**32 - 1, e.g. 0,1,2",
    )
    g.add_argument(
        "--set",
        dest="fixed",
        action="append",
        type=_assignment,
        default=[],
        metavar="KEY=VALUE",
        help="fix a config field the study does not search, for every trial, e.g. --set w=0.9 --set noise.kind=mask "
        "(dotted paths of sidae.config.SidAEConfig)",
    )
    g.add_argument(
        "--primary-fraction",
        type=bounded(float, above=0, maximum=1),
        default=0.01,
        help="label fraction in (0, 1] whose validation linear-probe accuracy is the objective (default 0.01)",
    )
    g.add_argument(
        "--until-decided",
        type=int,
        metavar="SEEDS",
        help="confirmatory w-sweep: confirm the chosen w on up to SEEDS fresh seeds (2-30), looked at "
        "after 4, then every 2 (alpha spent O'Brien-Fleming-style), stopping at the first look that "
        "decides; default: the budget's looks (cpu: 4 and 6)",
    )
    g = p.add_argument_group("scheduling")
    g.add_argument("--address", help="Ray cluster HOST:PORT (default: start Ray on this machine)")
    g.add_argument(
        "--cpus-per-trial",
        type=bounded(float, above=0),
        default=1.0,
        help="CPUs per trial, > 0, fractions allowed (default 1)",
    )
    g.add_argument(
        "--gpus-per-trial",
        type=bounded(float, minimum=0),
        default=0.0,
        help="GPUs per trial, >= 0, e.g. 0.5 (default 0)",
    )
    g.add_argument(
        "--max-concurrent",
        type=bounded(int, minimum=1),
        help="trials at once, >= 1 (default: as many as resources allow)",
    )
    g.add_argument("--scheduler", help=f"early stopping: {', '.join(SCHEDULERS)} (default: the study's)")
    g.add_argument(
        "--time-budget",
        type=bounded(float, above=0),
        help="stop the study after this many minutes (> 0); cut and unstarted trials end PRUNED "
        "(stopped_by time-budget) and run at the next start",
    )
    g.add_argument(
        "--min-collapse-std",
        # the indicator (a mean std of unit vectors' coordinates) is at most about 1/sqrt(dim):
        # a threshold above 1 would prune every trial
        type=bounded(float, minimum=0, maximum=1),
        default=0.0,
        help="prune trials whose collapse indicator (std of l2-normalised features, ~1/sqrt(dim) "
        "when healthy) drops below this, in [0, 1] (default 0: off)",
    )
    g.add_argument(
        "--trial-retries",
        type=bounded(int, minimum=0),  # Ray Tune reads a negative max_failures as "retry forever"
        default=1,
        help="restarts of a crashed trial, from its last epoch's checkpoint, >= 0 (default 1)",
    )
    g.add_argument(
        "--max-retries",
        type=bounded(int, minimum=0),  # a negative one would leave every grid point out, and say "done"
        default=1,
        help="retries, at the next run of the study, of a grid point that failed, >= 0 (default 1)",
    )
    g.add_argument(
        "--seed",
        type=bounded(int, minimum=0, maximum=MAX_SEED),
        default=0,
        help="the sampler's seed, 0 to 2**32 - 1 (default 0)",
    )
    g.add_argument("--device", default="auto", help=f"{DEVICES} (default auto)")
    g.add_argument("--ray-dir", help="Ray Tune's experiment folder (default runs/ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def options(args: argparse.Namespace, argv: list[str]) -> StudyOptions:
    return StudyOptions(
        study=args.study,
        dataset=args.dataset,
        budget=args.budget,
        name=args.name,
        storage=args.storage,
        artifact_dir=args.artifact_dir,
        data_dir=args.data_dir,
        epochs=args.epochs,
        train_limit=args.train_limit,
        trials=args.trials,
        w_grid=args.w_grid,
        seeds=args.seeds,
        fixed=dict(args.fixed),
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        address=args.address,
        scheduler=args.scheduler,
        max_concurrent=args.max_concurrent,
        primary_fraction=args.primary_fraction,
        seed=args.seed,
        time_budget_s=None if args.time_budget is None else args.time_budget * 60,
        max_retries=args.max_retries,
        trial_retries=args.trial_retries,
        min_collapse_std=args.min_collapse_std,
        ray_dir=args.ray_dir,
        device=args.device,
        progress=not args.quiet,
        command=redacted_command(shlex.join([sys.executable, "-m", "studies.cli.run", *argv])),
        until_decided=args.until_decided,
    )


def list_studies() -> str:
    width = max(map(len, STUDIES))
    return "\n".join(f"{name:<{width}}  {study.summary}" for name, study in STUDIES.items())


def main(argv: list[str] | None = None) -> int:
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
