"""Stored tool calls and attachments: migrations on a database from before them, what they store, and that deleting
a conversation takes its calls, files, parts (and their search index) and message contexts with it."""

from __future__ import annotations

import sqlite3

import pytest

from storage.attachments import AttachmentStore
from storage.conversations import ConversationStore
from storage.database import open_database
from storage.migrations import apply_migrations, registered
from storage.tool_calls import ToolCallStore


def test_migrations_apply_on_a_database_from_before_them(tmp_path):
    path = tmp_path / "old.db"
    db = open_database(path, migrate=False)
    import storage.migrations as m

    names = registered()
    older = names[: names.index("m007_mcp_tool_calls")]
    for name, fn in m._REGISTRY:
        if name in older:
            with db.conn:
                fn(db)
    db["_migrations"].create({"id": int, "name": str, "applied": str}, pk="id", if_not_exists=True)
    db["_migrations"].insert_all([{"name": n, "applied": "2026-11-01"} for n in older])
    conversations = ConversationStore(db)
    conv = conversations.create(title="old chat")
    conversations.add_message(conv.id, "user", "hello")
    assert set(apply_migrations(db)) >= {"m007_mcp_tool_calls", "m008_chat_attachments"}
    assert [m.content for m in conversations.messages(conv.id)] == ["hello"]
    assert ToolCallStore(db).for_conversation(conv.id) == {} and AttachmentStore(db).for_conversation(conv.id) == []


def test_calls_files_and_contexts_are_stored_and_go_with_their_conversation():
    db = open_database(":memory:")
    conversations, calls, files = ConversationStore(db), ToolCallStore(db), AttachmentStore(db)
    conv = conversations.create(title="c")
    user = conversations.add_message(conv.id, "user", "q")
    reply = conversations.add_message(conv.id, "assistant", "")
    call = calls.add(conv.id, reply.id, 0, call_id="call_1", name="add", server="notes", arguments='{"a": 1}')
    assert call.state == "pending" and not call.finished
    call = calls.set_state(call.id, "done", "2")
    assert call.finished and calls.for_message(reply.id) == [call]
    with pytest.raises(ValueError):
        calls.set_state(call.id, "exploded")
    att = files.add(conv.id, name="n.txt", kind="text", pages=1, text="pump ran long", mode="chunks",
                    chunks=[(1, None, "the pump ran for ten minutes", [0.6, 0.8]), (2, None, "other", None)])
    assert [c.vector for c in files.chunks(conv.id)] == [pytest.approx([0.6, 0.8]), None]
    assert list(files.keyword_scores(conv.id, "pump minutes")) == [files.chunks(conv.id)[0].id]
    files.link([att.id], user.id)
    files.set_context(user.id, "ctx", [{"file": "n.txt", "part": 1}])
    assert files.contexts([user.id])[user.id].sources == [{"file": "n.txt", "part": 1}]
    conversations.delete(conv.id)
    for table in ("tool_calls", "attachments", "attachment_chunks", "message_context"):
        assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    assert db.execute("SELECT COUNT(*) FROM attachment_chunks_fts WHERE attachment_chunks_fts MATCH 'pump'"
                      ).fetchone()[0] == 0


def test_a_call_needs_its_reply():
    db = open_database(":memory:")
    conv = ConversationStore(db).create(title="c")
    with pytest.raises(sqlite3.IntegrityError):
        ToolCallStore(db).add(conv.id, 12345, 0, call_id="x", name="add", server=None, arguments="{}")
