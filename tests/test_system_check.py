"""scripts/check-system.sh, which `make test` runs first: on a machine missing a system part it
stops with one line naming the part and the command that installs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "check-system.sh"


def check(path: str) -> subprocess.CompletedProcess[str]:
    """The check alone (no --install), with only the commands on `path`."""
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        env={"PATH": path},
        timeout=60,
    )


def test_this_machine_has_every_part() -> None:
    done = check("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    assert done.returncode == 0, done.stderr


def test_a_missing_part_is_one_line_with_the_install_command(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with the tools the script uses but none of the parts
    bare.mkdir()
    for tool in ("id", "ls"):
        (bare / tool).symlink_to(shutil.which(tool))
    done = check(str(bare))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("make test needs system parts: missing docker-compose docker.io debootstrap")
    assert "apt-get install -y --no-install-recommends docker-compose docker.io debootstrap" in lines[0]
