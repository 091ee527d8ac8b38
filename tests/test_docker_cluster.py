"""docker/: the compose cluster started for real on this machine's Docker engine, CPU only.

docker/docker-compose.yml plus docker/compose.cpu.yml: PostgreSQL, a Ray head, two Ray CPU
workers and the dashboard come `up`; a smoke w-sweep goes through the `runner` service, on the
real MNIST bind-mounted read-only. Then: the trials are COMPLETE in the compose PostgreSQL and
ran on both workers, the dashboard (started before the artifact folder existed) serves their
reconstruction grids on 127.0.0.1, a Ray client without the token is refused, the study's
role is no superuser and the superuser cannot log in over TCP, no process of a Ray head or
worker has a database password in its environment, and `down -v` leaves no container, volume
or network. Starts dockerd when none answers (and stops only that
one); builds the local bases with docker/build-base.sh when the public ones cannot be pulled.
Prints the seconds each stage took."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCKER = REPO / "docker"
FILES = ["-f", str(DOCKER / "docker-compose.yml"), "-f", str(DOCKER / "compose.cpu.yml")]
INSTALL = "apt-get install -y --no-install-recommends docker.io docker-compose debootstrap"
PUBLIC_BASES = ("python:3.11-slim", "postgres:16")
LOCAL_BASES = {"BASE_IMAGE": "sidae-base:bookworm", "POSTGRES_IMAGE": "sidae-postgres:15"}
# The CA certificates builds need for TLS to the package index here; copied into the build
# context folder that the Dockerfile's EXTRA_CA_CERTS names (gitignored).
CA_BUNDLE = Path(os.environ.get("SIDAE_BUILD_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
STUDY = [
    "--study",
    "w-sweep",
    "--budget",
    "smoke",
    "--w-grid",
    "0,0.5,1",
    "--quiet",
]  # named points: the 3 trials it checks
WORKERS = 2
# Prints every process's command line and environment (run in a container).
ENVIRONS = """
import pathlib
for proc in pathlib.Path("/proc").glob("[0-9]*"):
    try:
        print((proc / "cmdline").read_bytes()[:200], (proc / "environ").read_bytes())
    except OSError:
        pass
"""

# Cold: a base from Debian's packages and an image with PyPI's torch (~1 min + ~10 min here);
# warm (build cache): a few minutes in all, most of it the study.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def run(command: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{' '.join(done.args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def engine_answers() -> bool:
    return run(["docker", "info"], timeout=30).returncode == 0


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Docker engine that answers: the running one, or a dockerd started here and stopped after."""
    missing = [tool for tool in ("docker", "dockerd", "docker-compose") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: as root, `{INSTALL}` (scripts/check-system.sh --install does)",
            pytrace=False,
        )
    if engine_answers():
        yield
        return
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log.open("w") as out:
        dockerd = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not engine_answers():
            assert dockerd.poll() is None and time.monotonic() < deadline, f"dockerd did not start:\n{log.read_text()}"
            time.sleep(1)
        yield
    finally:
        dockerd.terminate()  # stops its containers (none of ours are left) and its containerd
        try:
            dockerd.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dockerd.kill()
            dockerd.wait()


def available(image: str) -> bool:
    return (
        run(["docker", "image", "inspect", image], timeout=30).returncode == 0
        or run(["docker", "pull", "-q", image], timeout=600).returncode == 0
    )


def bases() -> dict[str, str]:
    """Settings for docker/.env: none where the public bases can be pulled, else the local ones."""
    if all(available(image) for image in PUBLIC_BASES):
        return {}
    if shutil.which("debootstrap") is None:
        pytest.fail(
            f"{' and '.join(PUBLIC_BASES)} cannot be pulled and debootstrap is not installed: `{INSTALL}`",
            pytrace=False,
        )
    ok(run(["sh", str(DOCKER / "build-base.sh")], timeout=900))
    return LOCAL_BASES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stages:
    """Times each stage of the test and prints it as it ends, past pytest's capture."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            with self.capsys.disabled():
                print(f"\ndocker cluster: {name} {time.monotonic() - start:.1f} s", flush=True)


def leftovers(project: str) -> list[str]:
    """Containers, volumes and networks of the compose project that are still there."""
    label = f"label=com.docker.compose.project={project}"
    found = []
    for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
        found += [f"{kind[0]} {line}" for line in ok(run(["docker", *kind, "-q", "--filter", label], 60)).split()]
    return found


class Cluster:
    """docker-compose on one project of the two files, with only the settings of `env_file`:
    neither the caller's environment nor a developer's docker/.env leaks in."""

    def __init__(self, project: str, env_file: Path) -> None:
        self.project, self.env_file = project, env_file
        self.env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run(
            ["docker-compose", "-p", self.project, *FILES, "--env-file", str(self.env_file), *args], timeout, self.env
        )

    def sql(self, query: str) -> list[list[str]]:
        """Rows of a query in the compose PostgreSQL, through psql on its own socket."""
        out = ok(
            self(
                "exec",
                "-T",
                "postgres",
                "psql",
                "-U",
                "sidae",
                "-d",
                "sidae",
                "-At",
                "-F",
                "\t",
                "-c",
                query,
                timeout=60,
            )
        )
        return [line.split("\t") for line in out.splitlines()]

    def wait_for_workers(self, count: int) -> None:
        """Until the head offers the CPUs of `count` one-CPU workers (it has none itself)."""
        deadline = time.monotonic() + 180
        while True:
            status = self("exec", "-T", "ray-head", "ray", "status", timeout=60).stdout
            total = re.search(r"/(\d+)\.0 CPU", status)
            if total and int(total.group(1)) == count:
                return
            assert time.monotonic() < deadline, f"{count} worker nodes did not join:\n{status}"
            time.sleep(3)


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, f"{url} does not answer"
        time.sleep(2)


def test_the_cpu_cluster_runs_a_study_end_to_end(
    engine: None, mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stage = Stages(capsys)
    with stage("bases"):
        settings = bases()
    if CA_BUNDLE.is_file():
        shutil.copyfile(CA_BUNDLE, DOCKER / "ca-certificates" / "host-system.crt")
    port = free_port()
    db_password = secrets.token_hex(32)
    env_file = tmp_path / "cluster.env"
    env_file.write_text(
        "".join(
            f"{k}={v}\n"
            for k, v in {
                "SIDAE_DB_PASSWORD": db_password,
                "POSTGRES_SUPERUSER_PASSWORD": secrets.token_hex(32),
                "RAY_AUTH_TOKEN": secrets.token_hex(32),
                **settings,
                "TORCH_VARIANT": "cuda",  # PyTorch's CPU index is out of reach here, PyPI is not
                "CPUS_PER_WORKER": "1",
                "DASHBOARD_PORT": str(port),
                "SIDAE_DATA_DIR": str(mnist_dir),
                "RAY_SHM_SIZE": "1gb",
            }.items()
        )
    )
    cluster = Cluster(f"sidae-test-{secrets.token_hex(4)}", env_file)
    try:
        with stage("build"):
            ok(cluster("build", "ray-head", timeout=1800))  # one image for every service but postgres
        with stage("up"):
            ok(cluster("up", "-d", "--scale", f"ray-cpu-worker={WORKERS}"))
            cluster.wait_for_workers(WORKERS)
            wait_for(f"http://127.0.0.1:{port}/dashboard")
        with stage("study"):
            ok(cluster("run", "--rm", "-v", f"{mnist_dir}:/data:ro", "runner", *STUDY, timeout=900))
        with stage("checks"):
            trials = cluster.sql(
                "SELECT t.study_id, t.trial_id, t.state, node.value_json, grid.value_json FROM trials t "
                "JOIN studies s USING (study_id) "
                "LEFT JOIN trial_user_attributes node ON node.trial_id = t.trial_id AND node.key = 'ray_node_id' "
                "LEFT JOIN trial_user_attributes grid ON grid.trial_id = t.trial_id "
                "AND grid.key = 'artifact:reconstructions' WHERE s.study_name = 'w-sweep-mnist'"
            )
            assert [state for _, _, state, _, _ in trials] == ["COMPLETE"] * 3, trials
            assert len({node for _, _, _, node, _ in trials}) == WORKERS, f"not on both workers: {trials}"
            # The dashboard came up on the fresh volume before the study made the artifact folder.
            assert "no artifact folder at /shared/artifacts yet" in ok(cluster("logs", "--no-color", "dashboard"))
            for study_id, trial_id, _, _, artifact in trials:  # value_json: the id in JSON quotes
                url = f"http://127.0.0.1:{port}/artifacts/{study_id}/{trial_id}/{artifact.strip(chr(34))}"
                with urllib.request.urlopen(url, timeout=30) as response:
                    assert response.read(8) == b"\x89PNG\r\n\x1a\n", url
            health = ["ray", "health-check", "--address", "ray-head:6379"]
            refused = cluster(
                "exec",
                "-T",
                "ray-cpu-worker",
                "env",
                "-u",
                "RAY_AUTH_MODE",
                "-u",
                "RAY_AUTH_TOKEN",
                *health,
                timeout=120,
            )
            assert refused.returncode != 0 and "InvalidAuthToken" in refused.stdout + refused.stderr, refused
            ok(cluster("exec", "-T", "ray-cpu-worker", *health, timeout=120))
            assert cluster.sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [["f"]]
            superuser = "import psycopg; psycopg.connect(host='postgres', user='postgres', dbname='postgres')"
            refused = cluster("exec", "-T", "dashboard", "python", "-c", superuser, timeout=60)
            assert refused.returncode != 0 and "rejects connection" in refused.stderr, refused
            for service, index in (("ray-head", "1"), ("ray-cpu-worker", "1"), ("ray-cpu-worker", "2")):
                seen = ok(cluster("exec", "-T", "--index", index, service, "python", "-c", ENVIRONS, timeout=60))
                assert "raylet" in seen and "PGPASS" not in seen and db_password not in seen, service
    finally:
        with stage("down"):
            down = cluster("down", "-v", "--remove-orphans", "--timeout", "20")
    ok(down)
    assert leftovers(cluster.project) == []
