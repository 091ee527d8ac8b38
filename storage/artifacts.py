"""Where trial artifacts (image grids, checkpoints) live, next to the storage they belong to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from sidae.checkpoint import write_atomic
from storage.errors import StorageError
from storage.urls import is_sqlite, sqlite_file

ARTIFACT_DIR_ENV = "SIDAE_ARTIFACT_DIR"


def artifact_dir_for(url: str, override: str | None = None) -> Path:
    """The artifact folder for the storage at `url` (absolute; not created here).

    An explicit `override` always wins. Otherwise a SQLite study keeps its artifacts beside its
    file, `<db stem>-artifacts/`, so copying or deleting a study moves both together; a
    PostgreSQL study has no file to sit beside, so it uses $SIDAE_ARTIFACT_DIR (a cluster sets
    it to a folder every node and the dashboard see) or `./artifacts`.
    """
    if override:
        return Path(override).expanduser().resolve()
    if is_sqlite(url):
        db = sqlite_file(url)
        return db.parent / f"{db.stem}-artifacts"
    env = os.environ.get(ARTIFACT_DIR_ENV)
    return Path(env).expanduser().resolve() if env else Path.cwd() / "artifacts"


# Content types Python's mimetypes gets wrong: it reads the system's mime.types, where ".pt" is a
# SNES page table, and the dashboard serves the download with it
CONTENT_TYPES = {".pt": "application/octet-stream"}


def store_file(store: FileSystemArtifactStore, path: Path, owner: optuna.Study | optuna.Trial) -> str:
    """Upload the file at `path` as an artifact of `owner`, with its content type; its id."""
    mimetype = CONTENT_TYPES.get(path.suffix)  # None: Optuna guesses from the name
    return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=owner, mimetype=mimetype)


def make_artifact_store(path: Path) -> FileSystemArtifactStore:
    """An artifact store on `path`, created and proven writable now.

    Optuna's FileSystemArtifactStore checks nothing until the first upload, which would be the
    end of a trial's first epoch; a test write here turns that into an error at start-up.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise StorageError(f"artifact folder {path} is not usable: {reason}") from error
    return AtomicArtifactStore(path)


class AtomicArtifactStore(FileSystemArtifactStore):
    """Optuna's file-system artifact store whose files appear whole or not at all.

    Optuna's store writes an artifact in place, after upload_artifact has recorded it in the
    database: a full disk would leave the dashboard a truncated image or checkpoint. Here the
    file is written beside its final name and renamed; on a full disk the record points to no
    file, which the dashboard shows as missing rather than as a broken file."""

    def __init__(self, base_path: Path) -> None:
        super().__init__(base_path)
        self.root = base_path

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        if Path(artifact_id).name != artifact_id or artifact_id in ("", ".", ".."):
            raise ValueError(f"invalid artifact id {artifact_id!r}")  # Optuna's ids are uuids
        write_atomic(self.root / artifact_id, content_body.read())
