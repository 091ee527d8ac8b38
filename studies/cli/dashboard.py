"""Browse the stored studies in optuna-dashboard: `python studies/dashboard.py`.

Every trial's page shows its parameters, its learning curve (validation kNN accuracy per epoch),
its user attributes (test accuracies, losses, ...) and its artifacts: the reconstruction grid
as an image, the weights as a download. Listens on 127.0.0.1 unless --host says otherwise.

Read-only unless --allow-edits: optuna-dashboard can delete studies and artifacts, finish
trials, edit attributes and upload files, with no login; here every request but GET and HEAD
is refused (403). Requests naming another host than this server's are refused too (403): a web
page can make a browser send requests to a loopback server through a DNS name that points at
127.0.0.1 (DNS rebinding), and such requests carry that name as their Host.

Safe beside a running study on the same SQLite file: a study's file is in WAL mode (its driver
set it: this reader never blocks the study's writes), and every connection waits out another
writer's lock instead of failing "database is locked". Read-only, the storage is opened
read-only too (storage.make_storage's read_only): the file is never switched to WAL, given
tables or created; a file that holds no study is refused in one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore

from sidae.arguments import Parser, bounded
from sidae.errors import UserError, exit_on, print_warnings
from storage import artifact_dir_for, default_url, make_storage, redact
from studies.analysis.stored import open_existing_storage


class ThreadedWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request, as the `optuna-dashboard` command does. `run_server`'s default
    server answers one request at a time, so a slow one (parameter importances on a big study, a
    checkpoint download) would stall the page's polling and every image on it."""

    daemon_threads = True  # Ctrl-C does not wait for a browser's open requests


def listen_host(text: str) -> str:
    """--host: an address to listen on, never empty: an empty host binds every interface, the
    opposite of the loopback default, and would look like a missing value rather than a choice
    (0.0.0.0 or :: says it)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "must not be empty: an empty host listens on every interface; say 0.0.0.0 for that"
        )
    return text


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python studies/dashboard.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--storage", help="the study storage URL (default: studies.db in the current folder)")
    p.add_argument("--artifact-dir", help="the study's artifact folder (default: beside the SQLite file)")
    p.add_argument(
        "--host",
        type=listen_host,
        default="127.0.0.1",
        help="address to listen on, not empty (default 127.0.0.1: this machine only)",
    )
    p.add_argument(
        "--port",
        type=bounded(int, minimum=0, maximum=65535),
        default=8080,
        help="port, 0 to 65535 (default 8080; 0 picks a free one)",
    )
    p.add_argument(
        "--allow-edits",
        action="store_true",
        help="let the browser change the storage (delete studies, tell trials, upload files); default: read-only",
    )
    p.add_argument(
        "--init-storage",
        action="store_true",
        help="create Optuna's tables first if the database has none (a cluster's dashboard, started before "
        "its first study); the dashboard itself still reads only",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name browsers may use for this server besides --host, localhost and "
        "127.0.0.1 (e.g. the name of a cluster's dashboard machine); repeatable",
    )
    return p


READ_METHODS = frozenset({"GET", "HEAD"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def request_hostname(host_header: str) -> str:
    """'Example.org:8080' -> 'example.org'; '[::1]:8080' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def guarded(app: WSGIApp, hostnames: frozenset[str], allow_edits: bool) -> WSGIApp:
    """`app` answering only requests for `hostnames`, and only reads unless `allow_edits`."""

    def refuse(start_response: Callable[..., Any], reason: str) -> Iterable[bytes]:
        body = f"{reason}\n".encode()
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def guard(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        hostname = request_hostname(environ.get("HTTP_HOST", ""))
        if hostname not in hostnames:
            return refuse(start_response, f"host {hostname!r} is not served here (see --allowed-host)")
        if not allow_edits and environ["REQUEST_METHOD"] not in READ_METHODS:
            return refuse(start_response, "this dashboard is read-only (start it with --allow-edits to change studies)")
        return app(environ, start_response)

    return guard


def artifact_store(url: str, override: str | None) -> FileSystemArtifactStore:
    """The study's artifact store, read from its folder at each request.

    Not `storage.make_artifact_store`: that creates the folder and writes a test file, which a
    viewer has no business doing (and cannot, on a read-only copy of a study). A folder that is
    not there yet is no reason to turn artifacts off: the first study run beside a fresh
    dashboard (a new cluster's shared volume) creates it, and its images show from then on."""
    folder = artifact_dir_for(url, override)
    if not folder.is_dir():
        print(
            f"note: no artifact folder at {folder} yet; trial images show once a study creates it (see --artifact-dir)",
            file=sys.stderr,
        )
    return FileSystemArtifactStore(folder)


def serve(
    url: str,
    artifact_dir: str | None,
    host: str,
    port: int,
    *,
    allow_edits: bool = False,
    allowed_hosts: Iterable[str] = (),
    init_storage: bool = False,
) -> WSGIServer:
    """A dashboard server bound to host:port (not yet serving); StorageError or OSError.
    init_storage: create Optuna's tables first where there are none (make_storage's opening)."""
    if init_storage:
        make_storage(url)
    storage = open_existing_storage(url, read_only=not allow_edits)
    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store(url, artifact_dir))
    hostnames = LOOPBACK_NAMES | {request_hostname(name) for name in (host, *allowed_hosts)}
    return make_server(host, port, guarded(app, hostnames, allow_edits), server_class=ThreadedWSGIServer)


def main(argv: list[str] | None = None) -> int:
    """`python studies/dashboard.py ARGS`: serve optuna-dashboard, read-only, on a study storage
    until interrupted.

    Args:
        argv: the command line without the program name; None: sys.argv[1:].

    Returns:
        The exit status: 0 after Ctrl-C, 2 after one `error:` line on stderr (no such database,
        a port in use) with nothing served.

    >>> main(["--storage", "sqlite:////nowhere/studies.db"])  # stderr: error: no SQLite database at ...
    2
    """
    print_warnings()
    args = parser().parse_args(argv)
    url = args.storage or default_url()
    try:
        server = serve(
            url,
            args.artifact_dir,
            args.host,
            args.port,
            allow_edits=args.allow_edits,
            allowed_hosts=args.allowed_host,
            init_storage=args.init_storage,
        )
    except UserError as error:
        return exit_on(error)
    except OSError as error:  # the port is taken, or the host is not an address of this machine
        print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 2
    mode = "editable" if args.allow_edits else "read-only"
    print(
        f"optuna-dashboard ({mode}) for {redact(url)} at http://{args.host}:{server.server_port}/dashboard "
        "(Ctrl-C stops it)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
