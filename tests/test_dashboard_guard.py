"""studies/dashboard.py refuses writes unless --allow-edits, and requests for another host
(DNS rebinding), with a real dashboard server on 127.0.0.1 and a real SQLite study."""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

from studies.cli.dashboard import request_hostname, serve


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.tell(study.ask(), 1.0)
    return url


@contextmanager
def dashboard(url: str, **options: object) -> Iterator[int]:
    server = serve(url, None, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def request(port: int, method: str, path: str, host: str = "127.0.0.1", body: dict | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = None if body is None else json.dumps(body)
    connection.request(
        method, path, body=payload, headers={"Host": f"{host}:{port}", "Content-Type": "application/json"}
    )
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace")


def study_names(url: str) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage=url)]


def test_read_only_by_default(url: str) -> None:
    with dashboard(url) as port:
        assert request(port, "GET", "/api/studies")[0] == 200
        status, text = request(port, "DELETE", "/api/studies/1")
        assert (status, "read-only" in text) == (403, True)
        assert request(port, "POST", "/api/studies", body={"study_name": "x", "directions": ["minimize"]})[0] == 403
    assert study_names(url) == ["s"]


def test_edits_only_when_allowed(url: str) -> None:
    with dashboard(url, allow_edits=True) as port:
        assert request(port, "POST", "/api/studies", body={"study_name": "x", "directions": ["minimize"]})[0] == 201
    assert sorted(study_names(url)) == ["s", "x"]


def dump(url: str) -> list[str]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        return list(connection.iterdump())


# optuna-dashboard's own write routes, each a request that changes the storage when edits are on
# (study 1; trial 1 COMPLETE, trial 2 RUNNING)
WRITES = [
    ("DELETE", "/api/studies/1", None),
    ("POST", "/api/studies/1/rename", {"study_name": "renamed"}),
    ("PUT", "/api/studies/1/note", {"version": 1, "body": "defaced"}),
    ("PUT", "/api/studies/1/1/note", {"version": 1, "body": "defaced"}),
    ("POST", "/api/trials/2/tell", {"state": "Fail"}),
    ("POST", "/api/trials/2/user-attrs", {"user_attrs": {"run_dir": "/etc"}}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_every_write_route_is_refused_and_would_have_written(
    url: str, method: str, path: str, body: dict | None
) -> None:
    optuna.load_study(study_name="s", storage=url).ask()  # trial 2, RUNNING
    before = dump(url)
    with dashboard(url) as port:
        assert request(port, method, path, body=body)[0] == 403
        assert request(port, "PATCH", path, body=body)[0] == 403
    assert dump(url) == before
    with dashboard(url, allow_edits=True) as port:  # the same request is a real write
        assert request(port, method, path, body=body)[0] < 300
    assert dump(url) != before


def test_requests_for_another_host_are_refused(url: str) -> None:
    with dashboard(url, allowed_hosts=["dash.example.org"]) as port:
        status, text = request(port, "GET", "/api/studies", host="attacker.example")  # DNS rebinding
        assert status == 403 and "'attacker.example' is not served here" in text
        for host in ("localhost", "127.0.0.1", "dash.example.org"):
            assert request(port, "GET", "/api/studies", host=host)[0] == 200
        assert request(port, "GET", "/api/studies", host="")[0] == 403  # no Host at all


def test_request_hostname() -> None:
    assert request_hostname("Example.ORG:8080") == "example.org"
    assert request_hostname("[::1]:8080") == "::1"
    assert request_hostname("localhost") == "localhost"
