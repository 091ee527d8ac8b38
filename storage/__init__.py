"""Where study results live: Optuna's SQL storage (SQLite file or PostgreSQL) and the trial
artifact folder. `storage.urls` is the only place that turns a URL into a storage."""

from storage.artifacts import ARTIFACT_DIR_ENV, artifact_dir_for, make_artifact_store, store_file
from storage.errors import StorageError
from storage.urls import (
    DEFAULT_SQLITE_NAME,
    default_url,
    is_sqlite,
    make_storage,
    parse,
    redact,
    sqlite_file,
)

__all__ = [
    "ARTIFACT_DIR_ENV",
    "DEFAULT_SQLITE_NAME",
    "StorageError",
    "artifact_dir_for",
    "default_url",
    "is_sqlite",
    "make_artifact_store",
    "make_storage",
    "parse",
    "redact",
    "sqlite_file",
    "store_file",
]
