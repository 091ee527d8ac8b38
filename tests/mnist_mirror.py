"""A stand-in for the internet: real MNIST served over HTTP from 127.0.0.1.

The test gzips the real files of $SIDAE_DATA_DIR/MNIST/raw (as the MNIST mirrors publish them)
and serves them from a local HTTP server. A `sitecustomize.py` on PYTHONPATH points
torchvision's MNIST mirror list at that server in any Python process started with it, so the
project's own commands (`studies/run.py`, `python -m sidae.train`, `make quickstart`) download
through torchvision's real code. Our gzip bytes differ from the published archives, so the
sitecustomize also gives torchvision the MD5 sums of these archives to verify against.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Patches torchvision.datasets.mnist right after it is imported (not at start-up: Ray starts many
# Python processes that never read MNIST and should not pay for importing torchvision).
SITECUSTOMIZE = """\
import importlib.abc
import importlib.util
import sys

MIRROR, RESOURCES = {mirror!r}, {resources!r}


class _PatchMnist(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torchvision.datasets.mnist":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            module.MNIST.mirrors = [MIRROR]
            module.MNIST.resources = RESOURCES

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PatchMnist())
"""


def gzip_mnist(raw: Path, out: Path) -> list[tuple[str, str]]:
    """Gzip the four real files into `out`; returns torchvision's `resources`: (name, md5)."""
    out.mkdir(parents=True, exist_ok=True)
    resources = []
    for name in RAW_FILES:
        archive = out / f"{name}.gz"
        archive.write_bytes(gzip.compress((raw / name).read_bytes(), mtime=0))
        resources.append((archive.name, hashlib.md5(archive.read_bytes()).hexdigest()))
    return resources


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        # torchvision probes each URL for redirects with a GET carrying "Method: HEAD" and hangs
        # up: answer it as a HEAD, so that `served` counts downloads only
        if self.headers.get("Method") == "HEAD":
            self.do_HEAD()
        else:
            super().do_GET()

    def copyfile(self, source: Any, outputfile: Any) -> None:
        super().copyfile(source, outputfile)
        self.server.served.append(self.path)  # type: ignore[attr-defined]  # sent to the end

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve `folder` on 127.0.0.1; yields the base URL and the paths whose whole file was sent."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(folder)))
    server.served = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server.served  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def write_sitecustomize(folder: Path, mirror: str, resources: list[tuple[str, str]]) -> Path:
    """A folder to put on PYTHONPATH: torchvision's MNIST then downloads from `mirror`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(mirror=mirror, resources=resources))
    return folder
