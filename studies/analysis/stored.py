"""Open what `studies/run.py` stored, for the commands that only read it (the dashboard, the
report): they must never create or change a database, and must say clearly what is missing.

`storage.make_storage` creates a SQLite file that is not there (right for a study that is about
to write); a reader given a mistyped path would then show an empty, new database instead of
saying the path is wrong. So readers open it with read_only=True: a SQLite file is opened in
SQLite's read-only mode, never switched to WAL nor given tables (a copy of a study, a file on a
read-only disk, a file that is no study all stay as they were).
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from sidae.errors import UserError
from storage import StorageError, is_sqlite, make_storage, sqlite_file


class StoredStudyError(UserError, ValueError):
    """A study that cannot be read or reported (unknown name, nothing complete); one line."""


def open_existing_storage(url: str, *, read_only: bool = True) -> optuna.storages.BaseStorage:
    """The storage at `url`, read-only unless asked (the dashboard's --allow-edits); for SQLite
    the file must exist already (nothing is created)."""
    if is_sqlite(url) and not sqlite_file(url).is_file():
        raise StorageError(
            f"no SQLite database at {sqlite_file(url)}; run a study first "
            "(python studies/run.py --study ...) or give its --storage"
        )
    return make_storage(url, read_only=read_only)


def load_existing_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """The study called `name`; the error lists the names the storage does hold."""
    names = sorted(s.study_name for s in storage.get_all_studies())
    if name not in names:
        held = ", ".join(names) if names else "none: run a study first"
        raise StoredStudyError(f"no study named {name!r} in this storage; studies: {held}")
    return optuna.load_study(study_name=name, storage=storage)


def unfinished(study: optuna.Study) -> dict[str, int]:
    """Trials still to come: RUNNING (in a worker) and WAITING (queued grid points), by state
    name; empty once the study is finished (or was never resumed after its driver died)."""
    states = [t.state for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))]
    return {s.name.lower(): states.count(s) for s in (TrialState.RUNNING, TrialState.WAITING) if s in states}
