"""Opening Ember's SQLite database: WAL mode, foreign keys, migrations applied."""

from __future__ import annotations

import sqlite3
import threading
import weakref
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
        by one at a time: every user holds :func:`database_lock` while it runs statements, and
        :func:`close_database` closes it.

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


_locks: weakref.WeakKeyDictionary[sqlite_utils.Database, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def database_lock(db: sqlite_utils.Database) -> threading.RLock:
    """The one lock every user of ``db`` holds while it runs a statement or a transaction.

    Python's sqlite3 module crashes the process when two threads use one connection at once, or when it is closed
    while another thread runs a statement; and a transaction on a shared connection would take in another
    store's half-done writes. So all the stores of a database share this lock (it is re-entrant).
    """
    with _locks_guard:
        lock = _locks.get(db)
        if lock is None:
            lock = _locks[db] = threading.RLock()
        return lock


def close_database(db: sqlite_utils.Database) -> None:
    """Close the connection once no statement is running; a later use raises ``sqlite3.ProgrammingError``."""
    with database_lock(db):
        db.conn.close()
