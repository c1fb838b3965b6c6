"""Opening Ember's SQLite database: WAL mode, foreign keys, migrations applied."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from storage.errors import StorageError
from storage.migrations import apply_migrations


def open_database(path: Path | str, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    Args:
        path: the database file, or ``":memory:"`` for a throwaway store.
        migrate: apply pending migrations (tests of the migrations themselves pass False).

    Returns:
        A ``sqlite_utils.Database`` in WAL mode with foreign keys on. The connection may be used from any thread,
        but by one thread at a time: callers that share it serialise access.

    Raises:
        StorageError: the file cannot be opened or is not a database.
    """
    memory = str(path) == ":memory:"
    try:
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        db = sqlite_utils.Database(conn)
        if not memory:
            db.enable_wal()
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        if migrate:
            apply_migrations(db)
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"Cannot open the database {path}: {exc}. If the file is damaged, move it aside and Ember will "
            "start with a new one."
        ) from exc
    return db
