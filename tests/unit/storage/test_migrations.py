import sqlite3

import pytest
import sqlite_utils

from storage.database import open_database
from storage import migrations
from storage.migrations import applied, apply_migrations, registered


def test_fresh_database_gets_every_migration_once(tmp_path):
    db = open_database(tmp_path / "ember.db")
    assert applied(db) == registered()
    assert {"conversations", "messages", "messages_fts", "models"} <= set(db.table_names())
    assert apply_migrations(db) == []  # second run does nothing
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_existing_database_gets_only_missing_migrations(tmp_path):
    """A database written by a release that knew only the first migration keeps its data and gets the rest."""
    path = tmp_path / "ember.db"
    db = sqlite_utils.Database(path)
    first_name, first_fn = migrations._REGISTRY[0]
    db["_migrations"].create({"id": int, "name": str, "applied": str}, pk="id")
    first_fn(db)
    db["_migrations"].insert({"name": first_name, "applied": "2026-01-01T00:00:00+00:00"})
    db["conversations"].insert({"title": "old chat", "created": "c", "updated": "u", "settings": "{}"})
    db.conn.close()

    db = open_database(path)
    assert applied(db) == registered()
    stamps = [r["applied"] for r in db["_migrations"].rows_where(order_by="id")]
    assert stamps[0] == "2026-01-01T00:00:00+00:00"  # the old record is kept, not re-applied
    assert [r["title"] for r in db["conversations"].rows] == ["old chat"]
    assert "models" in db.table_names()


def test_migrations_apply_to_memory_database():
    db = open_database(":memory:")
    assert applied(db) == registered()


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "ember.db"
    path.write_bytes(b"this is not sqlite" * 100)
    try:
        open_database(path)
    except Exception as exc:  # noqa: BLE001 - checking the type below
        from storage.errors import DatabaseDamagedError

        assert isinstance(exc, DatabaseDamagedError)  # a StorageError: known, one line in the CLI
        assert "is damaged (file is not a database)" in str(exc)
        assert "`ember conversations recover`" in str(exc)  # recovery is offered, never a bare "move it aside"
        assert isinstance(exc.__cause__, sqlite3.DatabaseError)
    else:
        raise AssertionError("opening garbage as a database must fail")


def test_message_versions_migration_turns_old_conversations_into_one_branch(tmp_path):
    """A database from before message versions: its messages follow each other and stay shown, in order."""
    path = tmp_path / "ember.db"
    db = sqlite_utils.Database(path)
    db["_migrations"].create({"id": int, "name": str, "applied": str}, pk="id")
    names = registered()
    before = names[: names.index("m005_message_versions")]
    for name, fn in migrations._REGISTRY:
        if name in before:
            fn(db)
            db["_migrations"].insert({"name": name, "applied": "2026-01-01T00:00:00+00:00"})
    for title in ("one", "two"):
        conv = db["conversations"].insert({"title": title, "created": "c", "updated": "u", "settings": "{}"}).last_pk
        for i, role in enumerate(["user", "assistant", "user", "assistant"]):
            db["messages"].insert({"conversation_id": conv, "role": role, "content": f"{title}-{i}",
                                   "created": "c", "stats": "{}"})
    db["conversations"].insert({"title": "empty", "created": "c", "updated": "u", "settings": "{}"})
    db.conn.close()

    from storage.conversations import ConversationStore

    store = ConversationStore(open_database(path))
    by_title = {c.title: c for c in store.list()}
    for title in ("one", "two"):
        shown = store.messages(by_title[title].id)
        assert [m.content for m in shown] == [f"{title}-{i}" for i in range(4)]
        assert shown[0].parent_id is None and [m.parent_id for m in shown[1:]] == [m.id for m in shown[:-1]]
        assert all(v.count == 1 for v in store.versions(by_title[title].id).values())
    assert store.messages(by_title["empty"].id) == [] and by_title["empty"].leaf_id is None
    assert store.search("one")  # full-text search still finds the updated rows


def test_m009_shapes_stored_conversation_settings():
    """Settings stored before m009: a non-object, an unknown sampling key, empty routing values, nulls."""
    import json

    db = sqlite_utils.Database(memory=True)
    db["_migrations"].create({"id": int, "name": str, "applied": str}, pk="id")
    before = registered()[:registered().index("m009_conversation_settings_shape")]
    for name, fn in migrations._REGISTRY:
        if name in before:
            fn(db)
            db["_migrations"].insert({"name": name, "applied": "2026-01-01T00:00:00+00:00"})
    stored = [json.dumps({"system_prompt": "Be brief.", "sampling": {"temperature": 0.2, "mirostat": 2},
                          "router": "", "router_large": "", "mcp_servers": ["files"]}),
              json.dumps(["not", "an", "object"]), json.dumps({"sampling": "hot", "system_prompt": None}),
              json.dumps({"sampling": {"mirostat": 2}})]
    for i, settings in enumerate(stored):
        db["conversations"].insert({"title": f"c{i}", "created": "c", "updated": "u", "settings": settings})
    apply_migrations(db)
    rows = [json.loads(r["settings"]) for r in db["conversations"].rows_where(order_by="id")]
    assert rows == [{"system_prompt": "Be brief.", "sampling": {"temperature": 0.2}, "mcp_servers": ["files"]},
                    {}, {}, {}]


def test_m010_adds_route_labels_and_learned_state_beside_stored_decisions():
    """A database with routing decisions from before m010 keeps them and gets the label and learned-state tables:
    one label per decision, gone with its decision."""
    db = sqlite_utils.Database(memory=True)
    db["_migrations"].create({"id": int, "name": str, "applied": str}, pk="id")
    before = registered()[:registered().index("m010_route_labels")]
    for name, fn in migrations._REGISTRY:
        if name in before:
            fn(db)
            db["_migrations"].insert({"name": name, "applied": "2026-01-01T00:00:00+00:00"})
    decision = db["routing_decisions"].insert({"created": "c", "policy": "auto", "tier": "small", "score": 0.2,
                                               "signals": "{}"}).last_pk
    assert "m010_route_labels" in apply_migrations(db)
    assert {"route_labels", "route_learned"} <= set(db.table_names())
    assert db["routing_decisions"].count == 1
    db.execute("PRAGMA foreign_keys = ON")
    row = {"decision_id": decision, "policy": "auto", "wrong": 1, "source": "ask-large", "created": "c"}
    db["route_labels"].insert(row)
    with pytest.raises(sqlite3.IntegrityError):
        db["route_labels"].insert(row)  # one label per decision
    db.execute("DELETE FROM routing_decisions WHERE id = ?", [decision])
    assert db["route_labels"].count == 0
    db["route_learned"].insert({"policy": "auto", "state": "{}", "updated": "u"}, pk="policy")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO route_learned (policy, state, updated) VALUES ('auto', '{}', 'u')")
