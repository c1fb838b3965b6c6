"""From an SQLite error to a known error that says what happened and what to do.

A full disk, a read-only file, a lock held by another program and a damaged file each get their own type and
message: only a damaged file is damaged, and only then is recovery suggested. Errors that are none of these (a
constraint, a bad statement) are not known errors and are left as they are (bugs keep their traceback).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Iterator

from storage.errors import (DatabaseDamagedError, DatabaseLockedError, DiskFullError, ReadOnlyDatabaseError,
                            StorageError)
from storage.sizes import MIB, format_bytes

# What SQLite needs free to go on writing: a write-ahead log grows to about 1000 pages (4 MiB) before it is
# checkpointed into the database, which then grows by as much; the log already written is copied in as well.
HEADROOM = 8 * MIB

# Primary result codes (the low byte of an extended code); sqlite3 only names them from Python 3.11.
FULL, READONLY, BUSY, LOCKED, CORRUPT, NOTADB, IOERR, CANTOPEN, PERM = 13, 8, 5, 6, 11, 26, 10, 14, 3
IOERR_SHMSIZE = 4874  # the shared-memory index could not grow: no room for a 32 KiB file
_BY_TEXT = {"database or disk is full": FULL, "attempt to write a readonly database": READONLY,
            "database is locked": BUSY, "database table is locked": LOCKED,
            "database disk image is malformed": CORRUPT, "file is not a database": NOTADB,
            "disk i/o error": IOERR, "unable to open database file": CANTOPEN}

READ_ONLY_HINT = ("your conversations can still be read and exported (`ember conversations list`, "
                  "`ember conversations export ID FILE`)")


def error_code(exc: sqlite3.Error) -> tuple[int, int]:
    """``(primary, extended)`` result code of an SQLite error (from its text before Python 3.11; 0 if unknown)."""
    extended = getattr(exc, "sqlite_errorcode", None)
    if isinstance(extended, int):
        return extended & 0xFF, extended
    code = _BY_TEXT.get(str(exc).strip().lower(), 0)
    return code, code


def free_space(folder: Path) -> int | None:
    """Bytes free to this user on the disk holding ``folder`` (None when it cannot be measured)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def space_needed(path: Path) -> int:
    """Bytes that should be free beside the database ``path`` for Ember to write to it again."""
    try:
        wal = Path(f"{path}-wal").stat().st_size
    except OSError:
        wal = 0
    return HEADROOM + wal


def known_error(exc: sqlite3.Error, path: Path | None, *, doing: str) -> StorageError | None:
    """The known error ``exc`` stands for, or None when it is not one (a bug: a constraint, a bad statement).

    Args:
        exc: what SQLite raised.
        path: the database file (None for an in-memory database).
        doing: what Ember was doing, completing "Ember could not ..." (``"save the message"``).
    """
    primary, extended = error_code(exc)
    where = str(path) if path else "the database"
    folder = path.parent if path else Path.cwd()
    free = free_space(folder)
    if primary == FULL or extended == IOERR_SHMSIZE or (primary == IOERR and _short_of_space(path, free)):
        return DiskFullError(_full_message(exc, path, doing=doing, free=free))
    if primary == READONLY or primary == PERM or (primary == CANTOPEN and path and not _writable(path)):
        return ReadOnlyDatabaseError(
            f"Ember could not {doing}: {where} is read-only ({exc}). Make the file and its folder {folder} "
            f"writable by you (or point EMBER_HOME at a writable folder) and try again. Nothing is damaged: "
            f"{READ_ONLY_HINT}.")
    if primary in (BUSY, LOCKED):
        return DatabaseLockedError(
            f"Ember could not {doing}: {where} is locked by another program (another Ember, or a tool that has "
            f"the file open) ({exc}). Close that program and try again; nothing is damaged.")
    if primary in (CORRUPT, NOTADB):
        return DatabaseDamagedError(damaged_message(exc, path))
    if primary == IOERR:
        return StorageError(
            f"Ember could not {doing}: reading or writing {where} failed ({exc}), with {format_bytes(free)} free "
            "on its disk. The file is probably not damaged: check the disk (the system log, `dmesg`) and try "
            "again; do not delete or move the file.")
    if primary == CANTOPEN:
        return StorageError(f"Ember could not {doing}: {where} cannot be opened ({exc}). Check that its folder "
                            f"{folder} exists and is yours.")
    return None


def damaged_message(exc: BaseException | str, path: Path | None) -> str:
    """What a user reads about a damaged database file: what happened and how to recover it."""
    name = path.name if path else "ember.db"
    return (f"The database {path or 'file'} is damaged ({exc}). Run `ember conversations recover` to copy "
            f"everything SQLite can still read into a new database; the damaged file is kept beside it as "
            f"{name}.damaged-DATE, nothing is deleted.")


@contextlib.contextmanager
def translated(path: Path | None, *, doing: str) -> Iterator[None]:
    """Run a block of statements, raising an SQLite error that is a known error as that known error."""
    try:
        yield
    except sqlite3.Error as exc:
        known = known_error(exc, path, doing=doing)
        if known is None:
            raise
        raise known from exc


def _full_message(exc: sqlite3.Error, path: Path | None, *, doing: str, free: int | None) -> str:
    need = space_needed(path) if path else HEADROOM
    folder = path.parent if path else "the database's folder"
    if free is not None and free >= need:
        cause = (f"{path or 'the database'} cannot grow ({exc}) although {format_bytes(free)} is free on its "
                 "disk: a disk quota or file-size limit is in the way. Raise it, or free space under it,")
    else:
        cause = (f"the disk holding {folder} is full ({exc}). Free at least {format_bytes(need)} there "
                 f"({format_bytes(free)} is free now)")
    return (f"Ember could not {doing}: {cause} and try again. Nothing is damaged: do not move the database "
            f"aside; {READ_ONLY_HINT}.")


def _short_of_space(path: Path | None, free: int | None) -> bool:
    return path is not None and free is not None and free < space_needed(path)


def _writable(path: Path) -> bool:
    """Whether the database file (or, before it exists, its folder) may be written by this user."""
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK) and (not path.exists() or os.access(path.parent, os.W_OK))
