"""Opening Ember's SQLite database: WAL mode, foreign keys, migrations applied, private file modes; or read-only
when it cannot be written (a full disk, a read-only file), so conversations can still be listed and exported."""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from pathlib import Path

import sqlite_utils

from storage.errors import (DatabaseDamagedError, DatabaseLockedError, DiskFullError, ReadOnlyDatabaseError,
                            StorageError)
from storage.interrupted import mark_interrupted
from storage.migrations import apply_migrations
from storage.private import private_dir, private_file, tighten
from storage.sqlite_errors import known_error, translated

log = logging.getLogger(__name__)

_paths: weakref.WeakKeyDictionary[sqlite_utils.Database, Path] = weakref.WeakKeyDictionary()
_read_only: weakref.WeakSet[sqlite_utils.Database] = weakref.WeakSet()


def open_database(path: Path | str, *, migrate: bool = True, read_only: bool = False,
                  timeout: float = 10.0) -> sqlite_utils.Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    Args:
        path: the database file, or ``":memory:"`` for a throwaway store.
        migrate: apply pending migrations (tests of the migrations themselves pass False).
        read_only: open for reading only, writing nothing (no migration, no file created): see
            :func:`open_read_only`.
        timeout: seconds to wait for another program's write lock before giving up.

    Returns:
        A ``sqlite_utils.Database`` in WAL mode with foreign keys on. The connection may be used from any thread,
        by one at a time: every user holds :func:`database_lock` while it runs statements, and
        :func:`close_database` closes it. Replies left streaming by a process that has ended are marked
        ``interrupted`` (``storage.interrupted``).

    Raises:
        DiskFullError, ReadOnlyDatabaseError, DatabaseLockedError: the database cannot be written (nothing is
            damaged; :func:`open_read_only` still reads it).
        DatabaseDamagedError: the file is not a database or is damaged (``storage.recovery`` saves what it can).
        StorageError: any other reason it cannot be opened.
    """
    if read_only:
        return open_read_only(path, timeout=timeout)
    memory = str(path) == ":memory:"
    file = None if memory else Path(path)
    conn: sqlite3.Connection | None = None
    try:
        if file is not None:
            _prepare_file(file)
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=timeout)
        db = sqlite_utils.Database(conn)
        if file is not None:
            db.enable_wal()
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        if migrate:
            apply_migrations(db)
            _mark_interrupted(db, file)
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise known_error(exc, file, doing="open the database") or StorageError(
            f"Cannot open the database {path}: {exc}.") from exc
    if file is not None:
        for extra in (Path(f"{file}-wal"), Path(f"{file}-shm")):
            tighten(extra)
        _paths[db] = file
    return db


def open_read_only(path: Path | str, *, timeout: float = 10.0) -> sqlite_utils.Database:
    """Open the database file ``path`` for reading only, writing nothing to it (a statement that would write
    raises ``ReadOnlyDatabaseError``).

    Three ways are tried in turn: SQLite's read-only mode; a read-write connection that keeps the write-ahead
    log's index in memory (exclusive locking: no ``-shm`` file to grow, which is what fails on a full disk); and,
    when no write-ahead log holds pending data, the file as immutable (a read-only folder).

    Raises:
        StorageError (or a subclass): the file cannot be read by any of them (the first way's reason).
    """
    file = Path(path)
    if not file.is_file():
        raise StorageError(f"There is no database at {file}.")
    uri = file.resolve().as_uri()
    ways: list[tuple[str, bool]] = [(f"{uri}?mode=ro", False), (f"{uri}?mode=rw", True)]
    if _wal_empty(file):
        ways.append((f"{uri}?immutable=1", False))
    first: sqlite3.Error | None = None
    for target, exclusive in ways:
        conn = sqlite3.connect(target, uri=True, check_same_thread=False, timeout=timeout)
        try:
            if exclusive:
                conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            conn.execute("PRAGMA query_only = ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            first = first or exc
            log.debug("reading %s via %s failed: %s", file, target, exc)
            continue
        db = sqlite_utils.Database(conn)
        _paths[db] = file
        _read_only.add(db)
        return db
    assert first is not None
    raise known_error(first, file, doing="read the database") or StorageError(
        f"Cannot read the database {file}: {first}.") from first


def database_path(db: sqlite_utils.Database) -> Path | None:
    """The file ``db`` was opened from (None for an in-memory database or one not opened here)."""
    return _paths.get(db)


def is_read_only(db: sqlite_utils.Database) -> bool:
    """Whether ``db`` was opened read-only (:func:`open_read_only`)."""
    return db in _read_only


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


def _prepare_file(file: Path) -> None:
    """Create the database's folder (0700) and file (0600) if missing, tighten existing ones' modes; a folder
    that cannot be written is left for SQLite to report."""
    if not file.parent.exists():
        private_dir(file.parent)
    try:
        private_file(file)
    except OSError as exc:
        log.debug("cannot create %s before opening it: %s", file, exc)
    for extra in (Path(f"{file}-wal"), Path(f"{file}-shm")):
        tighten(extra)


def _mark_interrupted(db: sqlite_utils.Database, file: Path | None) -> None:
    """Mark replies whose writer has ended ``interrupted``; a database that cannot be written now keeps them
    streaming until a start that can (the write's own error is reported when a turn writes), and damaged messages
    do not stop the rest from opening (as before replies were marked)."""
    try:
        with database_lock(db), translated(file, doing="mark interrupted replies"), db.conn:
            count = mark_interrupted(db)
    except (DiskFullError, ReadOnlyDatabaseError, DatabaseLockedError) as exc:
        log.info("replies left streaming are not marked interrupted yet: %s", exc)
        return
    except DatabaseDamagedError as exc:  # the conversations that can be read stay usable; reading the rest says so
        log.warning("%s", exc)
        return
    if count:
        log.info("marked %d reply(ies) left streaming by an ended process as interrupted", count)


def _wal_empty(file: Path) -> bool:
    """Whether no write-ahead log beside ``file`` holds data (an immutable open would not see it)."""
    try:
        return Path(f"{file}-wal").stat().st_size == 0
    except FileNotFoundError:
        return True
    except OSError:
        return False
