"""The docs say what the code does: README.md is a guide of at most 200 lines, its cheap commands
run as printed, and every repository path, `file:function` and module the docs name exists."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.smoke_study import REPO

README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").rglob("*.md")), REPO / "benchmarks" / "README.md"]
# The line before a fenced block whose every command tests/test_docs.py runs (cheap: --help,
# --list, a smoke study). An HTML comment: GitHub does not show it.
RUNS_MARK = "<!-- runs in CI: tests/test_docs.py -->"
TOP_LEVEL = ("sidae", "studies", "storage", "docker", "tests", "benchmarks", "docs", "scripts", ".ci")
# Paths the docs name that exist only once made: by the user, by make-env.sh, by a run
GENERATED = ("docker/.env", "docker/.cluster", "docs/results/w-sweep-", "tests/.")
PACKAGES = ("sidae", "studies", "storage")
FILE_SUFFIXES = (".db", ".json", ".pt", ".md", ".py", ".png", ".csv")  # studies.db: a file, not a module

SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
REPO_PATH = re.compile(rf"^(?:{'|'.join(map(re.escape, TOP_LEVEL))})/[\w./-]*$")
FILE_FUNCTION = re.compile(r"^([\w./-]+\.py):(\w+)$")
MODULE = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.\w+)+$")


def named_in_docs() -> list[tuple[Path, str, bool]]:
    """(doc, word, is a link) for every backticked word and relative link of the docs."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        found += [(doc, span.strip(), False) for span in SPAN.findall(text)]
        found += [(doc, link, True) for link in LINK.findall(text) if "://" not in link]
    return found


def missing(doc: Path, word: str, link: bool = False) -> str | None:
    """Why `word`, as `doc` names it (in a link: relative to `doc`), does not exist; None when it
    does or is not a reference."""
    word = word.split()[0] if word.split() else word
    if (match := FILE_FUNCTION.match(word)) is not None:
        path, name = REPO / match.group(1), match.group(2)
        if not path.is_file():
            return f"{match.group(1)}: no such file"
        if not re.search(rf"^\s*(?:def|class|async def) {name}\b|^{name}\s*[:=]", path.read_text(), re.M):
            return f"{word}: {match.group(1)} defines no {name}"
        return None
    if MODULE.match(word) and not word.endswith(FILE_SUFFIXES):
        return None if _importable(word) else f"{word}: no such module or attribute"
    if REPO_PATH.match(word):
        if word.startswith(GENERATED) or any(c in word for c in "<>*"):
            return None
        return None if (REPO / word).exists() else f"{word}: no such path in the repository"
    if link and not (doc.parent / word).exists():
        return f"{word}: the link leads nowhere"
    return None


def _importable(dotted: str) -> bool:
    """A module, or an attribute of one (sidae.config.MAX_SEED)."""
    parts = dotted.split(".")
    target = importlib.import_module(parts[0])
    for depth, part in enumerate(parts[1:], start=2):
        if hasattr(target, part):
            target = getattr(target, part)
        elif hasattr(target, "__path__") and importlib.util.find_spec(".".join(parts[:depth])) is not None:
            target = importlib.import_module(".".join(parts[:depth]))
        else:
            return False
    return True


def test_readme_is_a_guide_of_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= 200


def test_every_path_function_and_module_the_docs_name_exists() -> None:
    problems = sorted(
        {f"{doc.relative_to(REPO)}: {why}" for doc, word, link in named_in_docs() if (why := missing(doc, word, link))}
    )
    assert problems == []


def test_a_renamed_path_is_found(tmp_path: Path) -> None:
    """The check itself: a doc naming a path, a function and a module that do not exist."""
    doc = tmp_path / "x.md"
    assert missing(doc, "studies/service/budget.py") == "studies/service/budget.py: no such path in the repository"
    assert (
        missing(doc, "sidae/config.py:NoSuchConfig")
        == "sidae/config.py:NoSuchConfig: sidae/config.py defines no NoSuchConfig"
    )
    assert missing(doc, "studies.notes") == "studies.notes: no such module or attribute"
    assert missing(doc, "../docs/cluster.md", link=True) == "../docs/cluster.md: the link leads nowhere"
    assert missing(doc, "sidae/config.py:SidAEConfig") is None and missing(doc, "sidae.config.MAX_SEED") is None


def cheap_commands() -> list[str]:
    """The commands of README.md's blocks marked RUNS_MARK, one per line."""
    lines, commands, marked, inside = README.read_text().splitlines(), [], False, False
    for line in lines:
        if line.strip() == RUNS_MARK:
            marked = True
        elif line.startswith("```"):
            inside, marked = (marked and not inside), False
        elif inside and line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def test_readme_marks_commands_to_run() -> None:
    commands = cheap_commands()
    assert any("--help" in c for c in commands) and any("--list" in c for c in commands)
    assert any("--budget smoke" in c for c in commands)


@pytest.mark.slow
@pytest.mark.parametrize("command", cheap_commands())
def test_cheap_readme_command_runs_as_printed(command: str, tmp_path: Path, mnist_dir: Path) -> None:
    """From a folder that holds the checkout's files (linked) but none of its outputs, so what
    the command writes (studies.db, runs/) stays in tmp_path."""
    for entry in REPO.iterdir():
        if entry.name not in {".git", "studies.db", "runs", "studies-artifacts", "reports", "data"}:
            (tmp_path / entry.name).symlink_to(entry)
    env = {**os.environ, "SIDAE_DATA_DIR": str(mnist_dir)}
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    if "--budget smoke" in command:  # the one study here at both of the budget's label fractions, end to end
        assert re.search(r"^method +1% +10% +seeds$", done.stdout, re.MULTILINE), done.stdout
        assert re.search(r"^primary verdict \(.*\): (HOLDS|REVERSED|NOT SHOWN|VOID)", done.stdout, re.MULTILINE)
