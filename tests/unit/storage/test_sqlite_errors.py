"""A full disk, a read-only or locked file and a damaged one: each its own known error and message, from real SQLite
errors through the real store code; only a damaged file is called damaged."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import storage.sqlite_errors as sqlite_errors
from storage.conversations import ConversationStore, StreamingMessage
from storage.database import close_database, is_read_only, open_database, open_read_only
from storage.errors import (DatabaseDamagedError, DatabaseLockedError, DiskFullError, EmberError,
                            ReadOnlyDatabaseError, StorageError, user_message)
from storage.sizes import format_bytes

ROOT = Path(__file__).resolve().parents[3]
HINT = ("your conversations can still be read and exported (`ember conversations list`, "
        "`ember conversations export ID FILE`).")


def _filled(path: Path) -> tuple[ConversationStore, int]:
    """A store at ``path`` with one conversation of two messages, then capped at its current size (SQLite's
    ``max_page_count``): the next write that needs a page fails as on a full disk (SQLITE_FULL)."""
    store = ConversationStore(open_database(path))
    chat = store.create(title="kept")
    store.add_message(chat.id, "user", "hello")
    store.add_message(chat.id, "assistant", "hi there")
    pages = store.database.execute("PRAGMA page_count").fetchone()[0]
    store.database.execute(f"PRAGMA max_page_count = {pages}")
    return store, chat.id


def test_full_disk_when_saving_a_message_says_so_with_the_space_needed(tmp_path, monkeypatch):
    path = tmp_path / "ember.db"
    store, chat = _filled(path)
    monkeypatch.setattr(sqlite_errors, "free_space", lambda folder: 96 * 1024)  # what the disk reports
    with pytest.raises(DiskFullError) as caught:
        store.add_message(chat, "user", "x" * 200_000)
    exc = caught.value
    assert isinstance(exc, EmberError) and isinstance(exc, OSError) and isinstance(exc, StorageError)
    assert not isinstance(exc, DatabaseDamagedError)
    assert isinstance(exc.__cause__, sqlite3.OperationalError)  # the real SQLite error, kept as the cause
    need = format_bytes(sqlite_errors.space_needed(path))
    assert str(exc) == (
        f"Ember could not save the message: the disk holding {tmp_path} is full (database or disk is full). "
        f"Free at least {need} there (96.0 KiB is free now) and try again. Nothing is damaged: do not move the "
        f"database aside; {HINT}")
    assert user_message(exc) == str(exc)  # one message path: a known error is shown as it is
    assert [m.content for m in store.messages(chat)] == ["hello", "hi there"]  # nothing lost, still readable


def test_full_disk_while_a_reply_streams_keeps_the_text_written(tmp_path, monkeypatch):
    store, chat = _filled(tmp_path / "ember.db")
    store.database.execute("PRAGMA max_page_count = 1000")
    reply = StreamingMessage(store, chat, model="m", flush_interval=0)
    reply.append("first words ")
    pages = store.database.execute("PRAGMA page_count").fetchone()[0]
    store.database.execute(f"PRAGMA max_page_count = {pages}")
    monkeypatch.setattr(sqlite_errors, "free_space", lambda folder: 0)
    with pytest.raises(DiskFullError, match=r"^Ember could not save the reply \(the text shown so far is kept up "
                                            r"to the last successful write\): the disk holding .* is full"):
        reply.append("y" * 200_000)
    assert store.message(reply.message.id).content == "first words "


def test_full_database_with_room_on_the_disk_names_a_quota(tmp_path):
    store, chat = _filled(tmp_path / "ember.db")
    with pytest.raises(DiskFullError) as caught:
        store.add_message(chat, "user", "x" * 200_000)
    assert "cannot grow (database or disk is full) although" in str(caught.value)
    assert "a disk quota or file-size limit is in the way" in str(caught.value)


# A disk that takes no more bytes, for real: the file-size limit (RLIMIT_FSIZE) of a child process. Opening needs a
# 32 KiB -shm file that cannot grow (SQLITE_IOERR_SHMSIZE, the "disk I/O error" a full disk gives at open).
FULL_AT_OPEN = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from storage.conversation_files import export_markdown
    from storage.conversations import ConversationStore
    from storage.database import close_database, open_database, open_read_only

    path = Path(sys.argv[1])
    store = ConversationStore(open_database(path))
    for title in ("first", "second"):
        chat = store.create(title=title)
        store.add_message(chat.id, "user", f"question in {title} " + "words " * 3000)
    close_database(store.database)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        open_database(path)
    except Exception as exc:
        print("OPEN", type(exc).__name__, exc)
    db = open_read_only(path)
    store = ConversationStore(db)
    print("LIST", [c.title for c in store.list()])
    print("EXPORT", export_markdown(store, 1).splitlines()[0])
    try:
        store.create(title="third")
    except Exception as exc:
        print("WRITE", type(exc).__name__)
    close_database(db)
""")


def test_a_disk_that_takes_no_more_bytes_opens_read_only_for_listing_and_export(tmp_path):
    done = subprocess.run([sys.executable, "-c", FULL_AT_OPEN, str(tmp_path / "ember.db")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["OPEN"].startswith("DiskFullError Ember could not open the database: ")
    assert "(disk I/O error)" in lines["OPEN"] and "Nothing is damaged" in lines["OPEN"]
    assert "damaged (" not in lines["OPEN"]
    assert lines["LIST"] == "['second', 'first']"
    assert lines["EXPORT"] == "# first"
    assert lines["WRITE"] == "ReadOnlyDatabaseError"


def test_read_only_store_refuses_writes_with_a_read_only_error(tmp_path):
    path = tmp_path / "ember.db"
    store = ConversationStore(open_database(path))
    store.create(title="kept")
    close_database(store.database)
    db = open_read_only(path)  # a ?mode=ro URI: read-only whoever runs the test, root included
    assert is_read_only(db)
    store = ConversationStore(db)
    with pytest.raises(ReadOnlyDatabaseError) as caught:
        store.create(title="new")
    assert isinstance(caught.value, PermissionError) and isinstance(caught.value, EmberError)
    assert str(caught.value) == (
        f"Ember could not create the conversation: {path} is read-only (attempt to write a readonly database). "
        f"Make the file and its folder {tmp_path} writable by you (or point EMBER_HOME at a writable folder) and "
        f"try again. Nothing is damaged: {HINT}")
    assert [c.title for c in store.list()] == ["kept"]
    close_database(db)


READ_ONLY_FILES = textwrap.dedent("""
    import sys
    from pathlib import Path
    from storage.conversations import ConversationStore
    from storage.database import close_database, open_database, open_read_only

    folder = Path(sys.argv[1])
    path = folder / "ember.db"
    store = ConversationStore(open_database(path))
    store.create(title="kept")
    close_database(store.database)
    path.chmod(0o400)
    folder.chmod(0o500)
    try:
        try:
            ConversationStore(open_database(path)).create(title="new")
        except Exception as exc:
            print("WRITE", type(exc).__name__, exc)
        db = open_read_only(path)
        print("LIST", [c.title for c in ConversationStore(db).list()])
        close_database(db)
    finally:
        folder.chmod(0o700)
        path.chmod(0o600)
""")


def _without_root_override() -> list[str] | None:
    """How to run a child for which file modes count: as it is for a user, and for root ``setpriv`` dropping the
    capability to override them; None where neither works."""
    if os.name != "posix":
        return None
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps",
            "-dac_override,-dac_read_search", "--"]


def test_read_only_file_and_folder_open_read_only(tmp_path):
    prefix = _without_root_override()
    if prefix is None:
        pytest.skip("file modes do not stop this user (root without setpriv) from writing; the ?mode=ro test "
                    "covers the read-only store")
    folder = tmp_path / "data"
    folder.mkdir()
    done = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_FILES, str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    path = folder / "ember.db"
    assert lines["WRITE"] == (
        f"ReadOnlyDatabaseError Ember could not open the database: {path} is read-only (attempt to write a "
        f"readonly database). Make the file and its folder {folder} writable by you (or point EMBER_HOME at a "
        f"writable folder) and try again. Nothing is damaged: {HINT}")
    assert lines["LIST"] == "['kept']"


def test_a_lock_held_by_another_program_is_a_locked_error(tmp_path):
    path = tmp_path / "ember.db"
    store = ConversationStore(open_database(path, timeout=0.05))
    chat = store.create(title="kept")
    other = sqlite3.connect(path)
    other.execute("BEGIN IMMEDIATE")  # another program is writing
    try:
        with pytest.raises(DatabaseLockedError) as caught:
            store.add_message(chat.id, "user", "hello")
    finally:
        other.rollback()
        other.close()
    assert str(caught.value) == (
        f"Ember could not save the message: {path} is locked by another program (another Ember, or a tool that "
        "has the file open) (database is locked). Close that program and try again; nothing is damaged.")
    store.add_message(chat.id, "user", "hello")  # once the lock is gone, writing works


def test_garbage_and_truncated_files_are_damaged_and_recovery_is_offered(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseDamagedError) as caught:
        open_database(garbage)
    assert str(caught.value) == (
        f"The database {garbage} is damaged (file is not a database). Run `ember conversations recover` to copy "
        "everything SQLite can still read into a new database; the damaged file is kept beside it as "
        "garbage.db.damaged-DATE, nothing is deleted.")
    whole = tmp_path / "whole.db"
    store = ConversationStore(open_database(whole))
    for i in range(30):
        store.add_message(store.create(title=f"chat {i}").id, "user", "words " * 400)
    close_database(store.database)
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(DatabaseDamagedError, match=r"is damaged \(database disk image is malformed\)\. Run "
                                                   r"`ember conversations recover`"):
        store = ConversationStore(open_database(truncated))
        for c in store.list():
            store.messages(c.id)
