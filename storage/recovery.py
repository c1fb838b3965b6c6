"""Recovering a damaged database: every row SQLite can still read, copied into a new database.

``recover_database`` reads the damaged file read-only, table by table in rowid order; where a read fails (a damaged
page) it skips ahead to the next row that can be read, so one bad page costs the rows on it, not the rest of the
table. The rows go into a new database with the current schema (ids kept, the full-text index rebuilt by its
triggers); references the damage broke are mended: messages whose conversation was lost get a "Recovered
conversation" of their own, a message whose parent was lost follows the conversation's previous surviving message
(so the branch shown runs across the gap), and a conversation whose shown message was lost shows its latest.
``recover_in_place`` then keeps the damaged file beside the new one (``ember.db.damaged-DATE``) and puts the new one
in its place: nothing is deleted.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import sqlite_utils

from storage.database import close_database, open_database
from storage.errors import StorageError

SKIPPED_TABLES = ("_migrations",)  # the new database's own record of its schema stays
MAX_ROWID = 1 << 62
MAX_RESTARTS = 100_000  # damaged parts skipped in one table at most


@dataclass
class RecoveryReport:
    """What a recovery kept of a damaged database."""

    source: Path  # where the damaged file was read from
    recovered: Path  # the new database
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    damaged_parts: int = 0  # reads that failed and were skipped past
    orphans: int = 0  # messages whose conversation was lost, now in "Recovered conversation" ones
    kept_as: Path | None = None  # where the damaged file is kept (set by recover_in_place)

    @property
    def conversations(self) -> int:
        return self.rows.get("conversations", 0)

    @property
    def messages(self) -> int:
        return self.rows.get("messages", 0)

    def summary(self) -> str:
        """What a user reads after the recovery."""
        if not any(self.rows.values()):
            text = (f"Nothing could be read from {self.source}: Ember starts with a new, empty database "
                    f"at {self.recovered}.")
        else:
            text = (f"Recovered {self.conversations} conversation(s) and {self.messages} message(s) from "
                    f"{self.source} into {self.recovered}")
            if self.damaged_parts:
                text += f"; {self.damaged_parts} damaged part(s) could not be read and were skipped"
            if self.orphans:
                text += (f"; {self.orphans} message(s) whose conversation was lost are in conversations titled "
                         "“Recovered conversation”")
            text += "."
        if self.kept_as is not None:
            text += f" The damaged file is kept as {self.kept_as}; delete it once your chats look right."
        return text


def recover_database(source: Path, target: Path) -> RecoveryReport:
    """Copy every readable row of the damaged database ``source`` into a new database at ``target``.

    Raises:
        StorageError: ``target`` exists, or the new database cannot be written (a full disk: ``DiskFullError``).
    """
    if target.exists():
        raise StorageError(f"{target} exists already; recovery writes only to a new file.")
    report = RecoveryReport(source=source, recovered=target)
    src = _open_source(source)
    new = open_database(target)
    try:
        new.conn.execute("PRAGMA foreign_keys = OFF")
        readable = _tables(src)
        for table in _copied_tables(new):
            if readable is not None and table not in readable:
                report.rows[table] = 0
                continue
            report.rows[table] = _copy_table(src, new.conn, table, report)
        report.orphans = _mend_references(new.conn)
        new.conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        close_database(new)
        raise StorageError(f"Recovery could not write {target} ({exc}).") from exc
    finally:
        if src is not None:
            src.close()
    close_database(new)
    return report


def recover_in_place(path: Path) -> RecoveryReport:
    """Recover the damaged database ``path`` into a new file that takes its place; the damaged file (and its
    ``-wal``/``-shm``) is kept beside it as ``<name>.damaged-<date>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = path.with_name(f"{path.name}.recovering-{stamp}")
    for leftover in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
        leftover.unlink(missing_ok=True)
    report = recover_database(path, work)
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            os.replace(part, Path(f"{kept}{suffix}"))
    os.replace(work, path)
    report.recovered, report.kept_as = path, kept
    return report


def damage(path: Path) -> str | None:
    """Why ``path`` is damaged (SQLite's own words), or None when its integrity check passes."""
    conn = _open_source(path)
    if conn is None:
        return "it cannot be opened as a database"
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    return None if rows == ["ok"] else "; ".join(str(r) for r in rows[:3])


def _open_source(path: Path) -> sqlite3.Connection | None:
    """The damaged file, opened for reading only (None when SQLite cannot open it at all)."""
    uri = path.resolve().as_uri()
    for target in (f"{uri}?mode=ro", f"{uri}?immutable=1"):
        try:
            conn = sqlite3.connect(target, uri=True)
        except sqlite3.Error:
            continue
        conn.text_factory = lambda b: b.decode("utf-8", "replace")  # damaged text reads as text
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA writable_schema = ON")  # a truncated file is read up to its end, not refused
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            if "file is not a database" not in str(exc):
                return conn  # the schema page is damaged: tables may still be read by name
            conn.close()
            continue
        return conn
    return None


def _tables(src: sqlite3.Connection | None) -> set[str] | None:
    """The tables the damaged file names (None: its schema cannot be read, so every table is tried)."""
    if src is None:
        return set()
    try:
        return {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return None


def _copied_tables(new: sqlite_utils.Database) -> list[str]:
    """The new database's tables to fill, parents before children (full-text tables are rebuilt, not copied)."""
    rows = new.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid").fetchall()
    virtual = [name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
    return [name for name, _ in rows
            if name not in SKIPPED_TABLES and not name.startswith("sqlite_")
            and not any(name == v or name.startswith(f"{v}_") for v in virtual)]


def _copy_table(src: sqlite3.Connection | None, dst: sqlite3.Connection, table: str,
                report: RecoveryReport) -> int:
    """Copy the readable rows of ``table``; returns how many were copied."""
    if src is None:
        return 0
    columns = [r[1] for r in dst.execute(f"PRAGMA table_info({_q(table)})").fetchall()]
    try:
        have = {r[1] for r in src.execute(f"PRAGMA table_info({_q(table)})").fetchall()}
    except sqlite3.DatabaseError:
        have = set(columns)
    columns = [c for c in columns if c in have] or columns
    insert = (f"INSERT OR IGNORE INTO {_q(table)} ({', '.join(map(_q, columns))}) "
              f"VALUES ({', '.join('?' for _ in columns)})")
    copied = 0
    with dst:
        for row in _readable_rows(src, table, columns, report):
            copied += dst.execute(insert, row).rowcount
    return copied


def _readable_rows(src: sqlite3.Connection, table: str, columns: list[str],
                   report: RecoveryReport) -> Iterator[tuple]:
    """The rows of ``table`` in rowid order, skipping past each part that cannot be read."""
    select = f"SELECT rowid, {', '.join(map(_q, columns))} FROM {_q(table)} WHERE rowid > ? ORDER BY rowid"
    last = 0
    for _ in range(MAX_RESTARTS):
        try:
            for row in src.execute(select, [last]):
                if not isinstance(row[0], int) or row[0] <= last:
                    break  # out of order: the damage loops the table back on itself
                last = row[0]
                yield tuple(row[1:])
            else:
                return
        except sqlite3.DatabaseError:
            pass  # the scan met a damaged page (or read ahead into one): find the next row that reads
        row, skipped = _next_readable(src, table, columns, last)
        report.damaged_parts += skipped
        if row is None:
            return
        last = row[0]
        yield tuple(row[1:])


def _next_readable(src: sqlite3.Connection, table: str, columns: list[str],
                   after: int) -> tuple[tuple | None, bool]:
    """The first row past rowid ``after`` that reads (None: none does), and whether rows were skipped to reach
    it: steps that double until a read works, then a binary search back to the first rowid that does."""
    probe_sql = (f"SELECT rowid, {', '.join(map(_q, columns))} FROM {_q(table)} WHERE rowid >= ? "
                 "ORDER BY rowid LIMIT 1")

    def probe(rowid: int) -> tuple[bool, tuple | None]:
        try:
            row = src.execute(probe_sql, [rowid]).fetchone()
        except sqlite3.DatabaseError:
            return False, None
        if row is not None and not (isinstance(row[0], int) and row[0] > after):
            return False, None  # out of order: the damage sends the search backwards
        return True, row

    failed, step = after, 1
    while after + step < MAX_ROWID:
        ok, found = probe(after + step)
        if ok:
            good = after + step
            while good - failed > 1:
                mid = (good + failed) // 2
                ok_mid, found_mid = probe(mid)
                if ok_mid:
                    good, found = mid, found_mid
                else:
                    failed = mid
            return found, failed > after
        failed, step = after + step, step * 2
    return None, True


def _mend_references(conn: sqlite3.Connection) -> int:
    """Mend what lost rows broke; returns how many messages lost their conversation."""
    orphans = conn.execute("SELECT count(*) FROM messages WHERE conversation_id NOT IN "
                           "(SELECT id FROM conversations)").fetchone()[0]
    with conn:
        conn.execute(
            "INSERT INTO conversations (id, title, created, updated, settings) "
            "SELECT conversation_id, 'Recovered conversation ' || conversation_id, MIN(created), MAX(created), '{}' "
            "FROM messages WHERE conversation_id NOT IN (SELECT id FROM conversations) GROUP BY conversation_id")
        conn.execute("UPDATE messages SET parent_id = (SELECT MAX(p.id) FROM messages AS p WHERE "
                     "p.conversation_id = messages.conversation_id AND p.id < messages.id) "
                     "WHERE parent_id IS NOT NULL AND parent_id NOT IN (SELECT id FROM messages)")
        conn.execute("UPDATE conversations SET leaf_id = (SELECT MAX(id) FROM messages "
                     "WHERE messages.conversation_id = conversations.id) "
                     "WHERE leaf_id IS NULL OR leaf_id NOT IN (SELECT id FROM messages)")
        _drop_dangling(conn)
    return orphans


def _drop_dangling(conn: sqlite3.Connection) -> None:
    """Other tables' rows that name a lost row: the reference is cleared where it may be empty, else the row
    goes (it meant nothing without what it named)."""
    for table, rowid, _parent, fkid in conn.execute("PRAGMA foreign_key_check").fetchall():
        keys = [k for k in conn.execute(f"PRAGMA foreign_key_list({_q(table)})").fetchall() if k[0] == fkid]
        info = {c[1]: c[3] for c in conn.execute(f"PRAGMA table_info({_q(table)})").fetchall()}
        column = keys[0][3] if keys else None
        if column is not None and not info.get(column):
            conn.execute(f"UPDATE {_q(table)} SET {_q(column)} = NULL WHERE rowid = ?", [rowid])
        else:
            conn.execute(f"DELETE FROM {_q(table)} WHERE rowid = ?", [rowid])


def _q(name: str) -> str:
    """``name`` quoted as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
