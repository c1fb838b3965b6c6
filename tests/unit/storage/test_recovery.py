"""Recovering a damaged database: what SQLite can still read is kept, the damaged file is kept beside it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage.conversations import ConversationStore
from storage.database import close_database, open_database
from storage.errors import DatabaseDamagedError
from storage.recovery import damage, recover_in_place

PAGE = 4096


def _database(path: Path, *, chats: int = 3, per_chat: int = 60) -> None:
    """Conversations of ``per_chat`` messages each, every message ~1.5 KB with a findable marker."""
    store = ConversationStore(open_database(path))
    for c in range(chats):
        chat = store.create(title=f"TITLE-chat-{c}")
        for i in range(per_chat):
            store.add_message(chat.id, "user" if i % 2 == 0 else "assistant",
                              f"MSG-{c}-{i:03d}- tulip " + "lorem ipsum " * 120)
    close_database(store.database)
    assert not Path(f"{path}-wal").exists()  # all in the main file


def _smash_page_holding(path: Path, marker: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(marker)
    start = at - at % PAGE
    data[start:start + PAGE] = bytes([0x55]) * PAGE
    path.write_bytes(bytes(data))


@pytest.mark.allow_log_warnings  # opening logs that the messages are damaged
def test_a_damaged_page_costs_its_rows_only(tmp_path):
    path = tmp_path / "ember.db"
    _database(path)
    _smash_page_holding(path, b"MSG-1-030-")
    damaged = path.read_bytes()
    store = ConversationStore(open_database(path))  # opens: the damage is in the middle of the messages
    with pytest.raises(DatabaseDamagedError, match="`ember conversations recover`"):
        for c in store.list():
            store.messages(c.id)
    close_database(store.database)
    assert damage(path) is not None

    report = recover_in_place(path)

    assert report.conversations == 3
    assert 170 <= report.messages < 180 and report.damaged_parts >= 1  # one page of ~1.5 KB messages lost
    assert report.kept_as is not None and report.kept_as.read_bytes() == damaged  # nothing deleted
    assert report.summary().startswith(f"Recovered 3 conversation(s) and {report.messages} message(s) from {path}")
    assert f"The damaged file is kept as {report.kept_as}" in report.summary()
    assert damage(path) is None
    store = ConversationStore(open_database(path))
    hurt = next(c for c in store.list() if c.title == "TITLE-chat-1")
    shown = [m.content[:10] for m in store.messages(hurt.id)]
    assert shown[0] == "MSG-1-000-" and shown[-1] == "MSG-1-059-"  # the branch runs across the gap
    assert "MSG-1-030-" not in shown and len(shown) == len(store.all_messages(hurt.id))
    assert all(len(store.messages(c.id)) == 60 for c in store.list() if c.id != hurt.id)
    assert len(store.search("tulip", limit=500)) == report.messages  # the full-text index is rebuilt
    store.add_message(hurt.id, "user", "and on we go")  # a working database again
    close_database(store.database)


def test_messages_whose_conversation_was_lost_get_a_recovered_conversation(tmp_path):
    path = tmp_path / "ember.db"
    _database(path, chats=2, per_chat=10)
    _smash_page_holding(path, b"TITLE-chat-0")

    report = recover_in_place(path)

    assert report.messages == 20 and report.orphans == 20
    store = ConversationStore(open_database(path))
    titles = sorted(c.title for c in store.list())
    assert titles == ["Recovered conversation 1", "Recovered conversation 2"]
    assert [len(store.messages(c.id)) for c in store.list()] == [10, 10]
    close_database(store.database)


def test_a_file_that_is_not_a_database_recovers_to_an_empty_one_and_is_kept(tmp_path):
    path = tmp_path / "ember.db"
    path.write_bytes(b"this is not sqlite" * 100)
    report = recover_in_place(path)
    assert report.messages == 0 and report.kept_as is not None and report.kept_as.exists()
    assert report.summary().startswith(f"Nothing could be read from {path}: Ember starts with a new, empty "
                                       f"database at {path}.")
    db = open_database(path)
    assert ConversationStore(db).list() == []
    close_database(db)


def test_a_truncated_file_keeps_the_rows_before_the_cut(tmp_path):
    path = tmp_path / "ember.db"
    _database(path, chats=2, per_chat=60)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 2 // 3])
    report = recover_in_place(path)
    assert report.conversations == 2 and 0 < report.messages < 120
    db = open_database(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    close_database(db)


def test_a_sound_database_is_not_damaged(tmp_path):
    path = tmp_path / "ember.db"
    _database(path, chats=1, per_chat=2)
    assert damage(path) is None
    assert sqlite3.connect(path).execute("SELECT count(*) FROM messages").fetchone()[0] == 2
