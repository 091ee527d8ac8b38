"""docker/: what can be proven without a Docker engine. The compose file validates with
`docker-compose config` (Debian's 1.29; CI installs it) and describes the cluster: the services,
the GPU reservation, health checks, secrets from the env file only, nothing private published,
one shared volume at one path; docker/compose.cpu.yml swaps the GPU workers for CPU ones. The
Dockerfile installs what pyproject.toml needs. The shell entry points run here against stub
`ray` and `python` commands. (tests/test_docker_cluster.py starts the cluster for real.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.conftest import REPO
from tests.postgres import free_port

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
CPU_OVERRIDE = DOCKER / "compose.cpu.yml"
SECRETS = {
    "SIDAE_DB_PASSWORD": "db-password-sentinel",
    "POSTGRES_SUPERUSER_PASSWORD": "pg-superuser-sentinel",
    "RAY_AUTH_TOKEN": "ray-token-sentinel",
}
SERVICES = {"postgres", "ray-head", "ray-worker", "ray-cpu-worker", "dashboard", "runner"}
RAY_SERVICES = {"ray-head", "ray-worker", "ray-cpu-worker", "runner"}
INIT_SIDAE = DOCKER / "postgres" / "init-sidae.sh"


def compose(
    *args: str, secrets: dict[str, str], env_file: Path, files: tuple[Path, ...] = (COMPOSE,)
) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f docker/docker-compose.yml ARGS` with only `secrets` and `env_file` as
    settings: neither the caller's environment nor a developer's docker/.env leaks in."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose is not installed; install it with "
            "`apt-get install -y --no-install-recommends docker-compose` (.ci/run does)",
            pytrace=False,
        )
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **secrets}
    file_args = [arg for file in files for arg in ("-f", str(file))]
    return subprocess.run(
        [binary, *file_args, "--env-file", str(env_file), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def services(empty_env_file: Path) -> dict[str, Any]:
    done = compose("config", secrets=SECRETS, env_file=empty_env_file)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def mounts(service: dict[str, Any]) -> set[tuple[str, str]]:
    """(source, target) of each volume, whichever form (short string or long mapping) compose printed."""
    pairs = set()
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        pairs.add((source, target))
    return pairs


def test_the_services_and_their_roles(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES
    head = services["ray-head"]["command"]
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    assert head[head.index("--num-cpus") + 1] == "0"  # trials run on the workers only
    runner = services["runner"]
    assert runner["profiles"] == ["submit"]  # `up` does not start a study; `run runner ...` does
    entry = runner["entrypoint"]
    assert entry[0] == "sidae-runner"  # joins as a node, then `python studies/run.py ARGS`
    assert entry[entry.index("--address") + 1] == "ray-head:6379"
    assert entry[entry.index("--storage") + 1] == "postgresql+psycopg://sidae@postgres:5432/sidae"
    assert services["dashboard"]["environment"]["SIDAE_STORAGE_URL"] == entry[entry.index("--storage") + 1]
    assert services["dashboard"]["command"][:2] == ["python", "studies/dashboard.py"]


def test_gpu_workers_reserve_nvidia_gpus(services: dict[str, Any]) -> None:
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert [d["driver"] for d in devices] == ["nvidia"]
    assert "gpu" in devices[0]["capabilities"] and devices[0]["count"] == "all"
    assert services["ray-worker"]["command"] == ["sidae-ray-worker"]  # claims its share: see the stub test below
    assert "container_name" not in services["ray-worker"]  # would forbid --scale
    cpu_worker = services["ray-cpu-worker"]  # docker/compose.cpu.yml's; not started here
    assert cpu_worker["scale"] == 0 and "deploy" not in cpu_worker
    assert cpu_worker["command"] == ["sidae-ray-worker"] and cpu_worker["environment"]["GPUS_PER_WORKER"] == "0"
    # Trials reserve GPUs unless the runner's arguments say otherwise: they replace `command`.
    runner = services["runner"]
    assert runner["environment"]["GPUS_PER_TRIAL"] == "0.5" and "--gpus-per-trial" not in runner["command"]


def test_the_cpu_override_runs_without_gpus(empty_env_file: Path) -> None:
    done = compose("config", secrets=SECRETS, env_file=empty_env_file, files=(COMPOSE, CPU_OVERRIDE))
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    started = {name for name, service in services.items() if service.get("scale", 1) > 0}
    assert started == SERVICES - {"ray-worker"}  # the only service with an NVIDIA reservation
    assert not [name for name in started if "deploy" in services[name]]
    assert services["runner"]["environment"]["GPUS_PER_TRIAL"] == "0"
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["args"]["TORCH_VARIANT"] == "cpu", name
            assert service["image"].startswith("sidae-studies-cpu:"), name  # not the CUDA image's tag


def test_health_checks_and_start_order(services: dict[str, Any]) -> None:
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["ray-head"]["healthcheck"]["test"][1:3] == ["ray", "health-check"]
    healthy = {"condition": "service_healthy"}
    assert services["ray-worker"]["depends_on"] == services["ray-cpu-worker"]["depends_on"] == {"ray-head": healthy}
    assert services["dashboard"]["depends_on"] == {"postgres": healthy}
    assert services["runner"]["depends_on"] == {"postgres": healthy, "ray-head": healthy}


def test_secrets_reach_exactly_the_services_that_need_them(services: dict[str, Any]) -> None:
    for name, service in services.items():
        env = service.get("environment", {})
        if name in RAY_SERVICES:  # one token, token authentication on, on every Ray process
            assert env["RAY_AUTH_TOKEN"] == SECRETS["RAY_AUTH_TOKEN"] and env["RAY_AUTH_MODE"] == "token"
        else:
            assert "RAY_AUTH_TOKEN" not in env
        app = {k for k, v in env.items() if v == SECRETS["SIDAE_DB_PASSWORD"]}
        expected = {"postgres": {"SIDAE_DB_PASSWORD"}, "dashboard": {"PGPASSWORD"}, "runner": {"SIDAE_DB_PASSWORD"}}
        assert app == expected.get(name, set()), name
        superuser = {k for k, v in env.items() if v == SECRETS["POSTGRES_SUPERUSER_PASSWORD"]}
        assert superuser == ({"POSTGRES_PASSWORD"} if name == "postgres" else set()), name
        rest = yaml.safe_dump({k: v for k, v in service.items() if k != "environment"})
        assert not [s for s in SECRETS.values() if s in rest], f"{name}: a secret outside the environment"


def test_no_ray_node_has_a_database_password(services: dict[str, Any]) -> None:
    """The workers never touch the database (the driver alone writes), and the runner's
    variable is not PGPASSWORD: docker/runner.sh takes it out of `ray start`'s environment
    (test_runner_gives_the_password_to_the_driver_alone)."""
    db_secrets = {SECRETS["SIDAE_DB_PASSWORD"], SECRETS["POSTGRES_SUPERUSER_PASSWORD"]}
    with_password = {
        name
        for name, service in services.items()
        for key, value in service.get("environment", {}).items()
        if "PASSWORD" in key or key.startswith("PGPASS") or value in db_secrets
    }
    assert with_password == {"postgres", "dashboard", "runner"}  # the dashboard is no Ray node
    assert "PGPASSWORD" not in services["runner"]["environment"]
    assert "PGPASSFILE" not in services["runner"]["environment"]  # runner.sh makes its own


def test_the_application_role_is_no_superuser(services: dict[str, Any]) -> None:
    """postgres's POSTGRES_USER is the superuser it creates: not the role of the storage URL.
    That role and its database come from init-sidae.sh, on a fresh volume."""
    env = services["postgres"]["environment"]
    url_user = re.match(r"postgresql\+psycopg://([^@:]+)@", services["dashboard"]["environment"]["SIDAE_STORAGE_URL"])
    assert url_user and url_user.group(1) == "sidae"
    assert env["POSTGRES_USER"] == "postgres" != "sidae"
    assert "POSTGRES_DB" not in env  # sidae's database is made by sidae's script, owned by sidae
    assert "--auth-host=scram-sha-256" in env["POSTGRES_INITDB_ARGS"]  # initdb's default trusts 127.0.0.1
    assert (str(INIT_SIDAE), "/docker-entrypoint-initdb.d/10-sidae.sh") in mounts(services["postgres"])
    assert os.access(INIT_SIDAE, os.X_OK)  # executed, not sourced into the image's entrypoint
    script = INIT_SIDAE.read_text()
    assert "CREATE ROLE sidae LOGIN NOSUPERUSER" in script and "CREATE DATABASE sidae OWNER sidae" in script
    assert '"host all ${POSTGRES_USER:-postgres} all reject"' in script  # TCP: refused, before any other line
    assert "\\getenv password SIDAE_DB_PASSWORD" in script and "<<'SQL'" in script  # not on psql's command line
    # The health check waits for the real server (TCP), not the socket-only one of the first start.
    check = services["postgres"]["healthcheck"]["test"]
    assert check[check.index("-h") + 1] == "127.0.0.1"
    # sidae-postgres runs the init scripts too, as the official image does.
    assert "/docker-entrypoint-initdb.d/*" in (DOCKER / "postgres" / "entrypoint.sh").read_text()


def server_binaries() -> Path:
    """PostgreSQL's server binaries, where scripts/pg_local.sh looks last (Debian's layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail("no /usr/lib/postgresql/*/bin/initdb: apt-get install postgresql", pytrace=False)
    return found[-1].parent


def test_init_sidae_runs_on_a_real_server() -> None:
    """init-sidae.sh on a cluster made as the postgres images make theirs, then the server as
    compose runs it: `sidae` logs in over TCP, is no superuser and owns its database; the
    superuser is refused over TCP whatever its password; the server log holds no password."""
    bindir, passwords = server_binaries(), {"postgres": "superuser-sentinel-1", "sidae": "app-sentinel-2"}
    root = Path(tempfile.mkdtemp(prefix="sidae-init-"))  # not pytest's tmp_path: `postgres` must enter it
    pgdata, port = root / "data", free_port()
    (root / "pw").write_text(passwords["postgres"] + "\n")
    shutil.copy2(INIT_SIDAE, root / "init-sidae.sh")
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")

    def as_pg(*command: str, **env: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        done = subprocess.run(
            [*prefix, *command], cwd=root, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{command[0]}: {done.stdout}{done.stderr}"

    def server(listen: str) -> list[str]:
        options = f"-c listen_addresses='{listen}' -c port={port} -c unix_socket_directories='{root}'"
        return [str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", str(root / "log"), "-w", "-o", options, "start"]

    try:
        as_pg(str(bindir / "initdb"), "-D", str(pgdata), "--username=postgres", f"--pwfile={root / 'pw'}",
              "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
        (root / "pw").unlink()
        with (pgdata / "pg_hba.conf").open("a") as hba:
            hba.write("host all all all scram-sha-256\n")  # what both images add
        as_pg(*server(""))  # the images' first start: the socket only
        as_pg(str(root / "init-sidae.sh"), PGDATA=str(pgdata), POSTGRES_USER="postgres",
              PGHOST=str(root), PGPORT=str(port), SIDAE_DB_PASSWORD=passwords["sidae"])  # fmt: skip
        as_pg(str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop")
        as_pg(*server("127.0.0.1"))
        tcp = {"host": "127.0.0.1", "port": port, "dbname": "sidae"}
        with psycopg.connect(**tcp, user="sidae", password=passwords["sidae"]) as connection:
            row = connection.execute(
                "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            assert row == (False, False, False)
            owner = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
            assert connection.execute(owner).fetchone() == ("sidae",)
            connection.execute("CREATE TABLE studies_here (id int)")  # Optuna makes its tables in public
        with pytest.raises(psycopg.OperationalError, match="rejects connection"):
            psycopg.connect(**tcp, user="postgres", password=passwords["postgres"])
        assert not [p for p in passwords.values() if p in (root / "log").read_text()]
    finally:
        if (pgdata / "postmaster.pid").exists():
            as_pg(str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = COMPOSE.read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|TOKEN)\s*:", line):  # every assignment interpolates, failing when unset
            assert re.search(rf":\s*\$\{{({'|'.join(SECRETS)}):\?", line), line
    assert not re.search(r"://[^/@\s:]+:[^@\s]+@", text), "a URL with a password"
    example = (DOCKER / ".env.example").read_text()
    assert all(re.search(rf"^{name}=$", example, re.M) for name in SECRETS)
    assert ".env" in (DOCKER / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_a_missing_secret_fails_clearly(missing: str, empty_env_file: Path) -> None:
    done = compose("config", secrets={k: v for k, v in SECRETS.items() if k != missing}, env_file=empty_env_file)
    assert done.returncode != 0
    assert missing in done.stderr and "docker/.env" in done.stderr and "make-env.sh" in done.stderr


def test_only_the_dashboard_is_published_and_on_loopback(services: dict[str, Any]) -> None:
    for name in SERVICES - {"dashboard"}:
        assert "ports" not in services[name], name
    for port in services["dashboard"]["ports"]:
        host_ip = port.split(":")[0] if isinstance(port, str) else port["host_ip"]
        assert host_ip == "127.0.0.1"


def test_shared_storage_at_one_path_on_every_node(services: dict[str, Any]) -> None:
    for name in ("ray-worker", "ray-cpu-worker", "runner", "dashboard"):
        assert ("shared", "/shared") in mounts(services[name]), name
    for name in ("ray-worker", "ray-cpu-worker", "runner"):
        assert "/data" in {target for _, target in mounts(services[name])}, name
    assert ("postgres", "/var/lib/postgresql/data") in mounts(services["postgres"])
    entry = services["runner"]["entrypoint"]
    assert entry[entry.index("--artifact-dir") + 1].startswith("/shared/")
    assert entry[entry.index("--ray-dir") + 1].startswith("/shared/")
    assert "/shared/artifacts" in services["dashboard"]["command"]


def test_make_env_writes_private_fresh_secrets_that_compose_accepts(tmp_path: Path) -> None:
    for name in ("make-env.sh", ".env.example"):
        shutil.copy(DOCKER / name, tmp_path / name)
    made = subprocess.run(["sh", str(tmp_path / "make-env.sh")], capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    env_file = tmp_path / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    values = dict(re.findall(rf"^({'|'.join(SECRETS)})=(.*)$", env_file.read_text(), re.M))
    assert set(values) == set(SECRETS)
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in values.values()) and len(set(values.values())) == 3
    assert not [v for v in values.values() if v in made.stdout + made.stderr]
    assert compose("config", "--quiet", secrets={}, env_file=env_file).returncode == 0
    again = subprocess.run(["sh", str(tmp_path / "make-env.sh")], capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "exists" in again.stderr


def test_dockerfile_installs_what_pyproject_needs() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    defaults = dict(re.findall(r"^ARG (\w+)=(\S*)$", dockerfile, re.M))  # a COPY source may name a build argument
    copied = {
        re.sub(r"\$\{(\w+)\}", lambda arg: defaults[arg.group(1)], src).rstrip("/")
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.M)
        for src in line.split()[:-1]
    }
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied
    assert all((REPO / src).exists() for src in copied), copied
    assert "cluster" in project["project"]["optional-dependencies"]
    # The dependencies in a layer of their own, then the project itself.
    assert 'p["dependencies"] + p["optional-dependencies"]["cluster"]' in dockerfile
    assert 'pip install --no-deps ".[cluster]"' in dockerfile
    # The torch builds the project is tested with (scripts/setup.sh), CUDA or CPU by build argument.
    setup = (REPO / "scripts" / "setup.sh").read_text()
    for name in ("torch", "torchvision"):
        pinned = re.search(rf'"{name}==([^"]+)"', setup).group(1)
        assert f"ARG {name.upper()}_VERSION={pinned}" in dockerfile
    assert "ARG TORCH_VARIANT=cuda" in dockerfile and "download.pytorch.org/whl/cpu" in dockerfile
    assert re.search(r"^ARG BASE_IMAGE=python:3.11-slim\nFROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    assert "/usr/local/bin/sidae-ray-worker" in dockerfile and "/usr/local/bin/sidae-runner" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.M)
    ignored = (REPO / ".dockerignore").read_text().splitlines()  # the one docker-compose 1.29 reads
    assert ".venv" in ignored and ".git" in ignored


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate()


def test_each_ray_worker_replica_claims_gpus_of_its_own(tmp_path: Path) -> None:
    """Four GPUs, two per replica: two replicas get devices 0,1 and 2,3; a third has none left."""
    bin_dir, slots = tmp_path / "bin", tmp_path / "slots"
    bin_dir.mkdir()
    slots.mkdir()
    stub(bin_dir, "python", "echo 4")  # torch.cuda.device_count()
    stub(bin_dir, "ray", 'echo "ray $* devices=$CUDA_VISIBLE_DEVICES"; exec sleep 120')  # a node: holds its slot
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GPU_SLOT_DIR": str(slots),
        "GPUS_PER_WORKER": "2",
        "RAY_HEAD_ADDRESS": "ray-head:6379",
    }
    script = str(DOCKER / "ray-worker.sh")
    replicas = []
    try:
        for _ in range(2):
            replicas.append(subprocess.Popen(["sh", script], env=env, stdout=subprocess.PIPE, text=True))
            replicas[-1].stdout.readline()  # "GPU slot i of 2": this replica holds its lock now
        lines = [replica.stdout.readline() for replica in replicas]
        assert sorted(line.split("devices=")[1].strip() for line in lines) == ["0,1", "2,3"]
        assert all("--address ray-head:6379 --num-gpus 2" in line for line in lines)
        third = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=30)
        assert third.returncode == 1 and "taken" in third.stderr
    finally:
        for replica in replicas:
            stop(replica)
    freed = subprocess.Popen(["sh", script], env=env, stdout=subprocess.PIPE, text=True)  # a restart finds its slot
    try:
        assert "GPU slot 0 of 2" in freed.stdout.readline()
    finally:
        stop(freed)
    cpu = subprocess.Popen(["sh", script], env={**env, "GPUS_PER_WORKER": "0"}, stdout=subprocess.PIPE, text=True)
    try:  # docker/compose.cpu.yml's worker: no slot, no GPU
        assert cpu.stdout.readline() == "ray-worker: no GPU (GPUS_PER_WORKER=0)\n"
        assert "--address ray-head:6379 --num-gpus 0 " in cpu.stdout.readline()
    finally:
        stop(cpu)
    wrong = subprocess.run(["sh", script], env={**env, "GPUS_PER_WORKER": "one"}, capture_output=True, text=True)
    assert wrong.returncode == 2 and "GPUS_PER_WORKER" in wrong.stderr


def test_runner_joins_the_cluster_then_runs_the_study(tmp_path: Path) -> None:
    stub(tmp_path, "python", 'echo "python $*"')
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "RAY_HEAD_ADDRESS": "ray-head:6379"}
    stub(tmp_path, "ray", 'echo "$*" >> "$(dirname "$0")/ray.calls"')
    done = subprocess.run(
        ["sh", str(DOCKER / "runner.sh"), "--study", "w-sweep"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout.strip() == "python studies/run.py --study w-sweep --gpus-per-trial 0"
    reserved = subprocess.run(
        ["sh", str(DOCKER / "runner.sh"), "--study", "w-sweep"],
        capture_output=True,
        text=True,
        env={**env, "GPUS_PER_TRIAL": "0.5"},
        timeout=30,
    )
    assert reserved.stdout.strip() == "python studies/run.py --study w-sweep --gpus-per-trial 0.5"
    for given in (["--gpus-per-trial", "1"], ["--gpus-per-trial=1"]):  # the user's word wins
        told = subprocess.run(
            ["sh", str(DOCKER / "runner.sh"), *given],
            capture_output=True,
            text=True,
            env={**env, "GPUS_PER_TRIAL": "0.5"},
            timeout=30,
        )
        assert told.stdout.split()[2:] == given
    assert (tmp_path / "ray.calls").read_text().startswith("start --address ray-head:6379 --num-cpus 0 --num-gpus 0")
    stub(tmp_path, "ray", 'echo "cannot reach the head"; exit 1')
    failed = subprocess.run(["sh", str(DOCKER / "runner.sh")], env=env, capture_output=True, text=True, timeout=30)
    assert failed.returncode == 1 and "could not join" in failed.stderr and "cannot reach the head" in failed.stderr


def test_runner_gives_the_password_to_the_driver_alone(tmp_path: Path) -> None:
    """SIDAE_DB_PASSWORD (or PGPASSWORD) ends in a 0600 libpq password file named by the
    driver's PGPASSFILE; `ray start`, whose node and workers outlive nothing of it, sees none."""
    password = "pw:with\\odd-chars"  # pgpass escapes ':' and '\\'
    stub(tmp_path, "ray", 'env > "$(dirname "$0")/ray.env"')
    stub(
        tmp_path,
        "python",
        'env > "$(dirname "$0")/python.env"; stat -c %a "$PGPASSFILE"; cat "$PGPASSFILE"',
    )
    # A PGPASSFILE already in the environment (a session's PostgreSQL fixture sets one) is the
    # user's own file: the password given beside it wins, and the node sees neither.
    given_file = tmp_path / "given.pgpass"
    given_file.write_text("*:*:*:*:given\n")
    given_file.chmod(0o600)
    base = {k: v for k, v in os.environ.items() if k not in ("PGPASSFILE", "PGPASSWORD", "SIDAE_DB_PASSWORD")}
    base |= {"PATH": f"{tmp_path}:{os.environ['PATH']}", "RAY_HEAD_ADDRESS": "ray-head:6379", "TMPDIR": str(tmp_path)}
    cases = {
        "SIDAE_DB_PASSWORD": ({"SIDAE_DB_PASSWORD": password}, "*:*:*:*:pw\\:with\\\\odd-chars"),
        "PGPASSWORD": ({"PGPASSWORD": password, "PGPASSFILE": str(given_file)}, "*:*:*:*:pw\\:with\\\\odd-chars"),
        "PGPASSFILE": ({"PGPASSFILE": str(given_file)}, "*:*:*:*:given"),
    }
    for name, (given, line) in cases.items():
        done = subprocess.run(
            ["sh", str(DOCKER / "runner.sh")], env=base | given, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["600", line], name
        ray_env = (tmp_path / "ray.env").read_text()
        python_env = (tmp_path / "python.env").read_text()
        assert "PGPASSFILE=" not in ray_env and "PGPASSFILE=" in python_env, name
        for seen in (ray_env, python_env):
            assert "pw:with" not in seen and "PASSWORD" not in seen, name
