"""studies/run.py's options are declared once (StudyOptions' fields) and the parser is built from
that declaration: every field but `command` is a flag, and each flag lands in its field."""

from __future__ import annotations

import dataclasses

from studies.cli.run import options, parser
from studies.service.options import GROUPS, StudyOptions

# One non-default value per flag, and the field value it must give.
EVERY_FLAG = {
    "--study": ("joint", "joint"),
    "--dataset": ("fashion-mnist", "fashion-mnist"),
    "--budget": ("smoke", "smoke"),
    "--name": ("n", "n"),
    "--epochs": ("3", 3),
    "--train-limit": ("100", 100),
    "--trials": ("7", 7),
    "--w-grid": ("0,0.5", (0.0, 0.5)),
    "--seeds": ("1,2", (1, 2)),
    "--primary-fraction": ("0.1", 0.1),
    "--until-decided": ("6", 6),
    "--address": ("127.0.0.1:6379", "127.0.0.1:6379"),
    "--cpus-per-trial": ("0.5", 0.5),
    "--gpus-per-trial": ("0.25", 0.25),
    "--device": ("cpu", "cpu"),
    "--max-concurrent": ("2", 2),
    "--scheduler": ("none", "none"),
    "--time-budget": ("1.5", 90.0),  # minutes on the command line, seconds in the option
    "--min-collapse-std": ("0.01", 0.01),
    "--trial-retries": ("0", 0),
    "--max-retries": ("3", 3),
    "--seed": ("5", 5),
    "--storage": ("sqlite:///x.db", "sqlite:///x.db"),
    "--artifact-dir": ("a", "a"),
    "--data-dir": ("d", "d"),
    "--ray-dir": ("r", "r"),
}


def test_every_flag_lands_in_its_field() -> None:
    argv = [part for flag, (text, _) in EVERY_FLAG.items() for part in (flag, text)]
    argv += ["--set", "w=0.9", "--set", "noise.kind='mask'", "--set", "w=0.8", "--quiet"]
    opts = options(parser().parse_args(argv), argv)
    got = {flag: getattr(opts, flag[2:].replace("-", "_")) for flag in EVERY_FLAG if flag != "--time-budget"}
    assert got == {flag: value for flag, (_, value) in EVERY_FLAG.items() if flag != "--time-budget"}
    assert opts.time_budget_s == 90.0
    assert opts.fixed == {"w": 0.8, "noise.kind": "mask"}  # a later --set of the same key wins
    assert opts.progress is False
    assert "--quiet" in opts.command and opts.command.split()[1:3] == ["-m", "studies.cli.run"]


def test_no_flag_gives_the_declared_defaults() -> None:
    opts = options(parser().parse_args(["--study", "w-sweep"]), [])
    assert dataclasses.replace(opts, command="") == StudyOptions(study="w-sweep")
    assert opts.fixed == {} and opts.fixed is not parser().parse_args([]).fixed  # no dict shared between runs


def test_each_field_is_one_flag_in_a_help_section() -> None:
    flagged = [f for f in dataclasses.fields(StudyOptions) if "flag" in f.metadata]
    assert {f.name for f in dataclasses.fields(StudyOptions)} - {f.name for f in flagged} == {"command"}
    assert {f.metadata["flag"].group for f in flagged} <= set(GROUPS)
    assert len(flagged) == len(EVERY_FLAG) + 2  # --set and --quiet, checked above
    help_text = parser().format_help()
    for group in GROUPS:
        assert f"\n{group}:\n" in help_text
