"""Forward-only, named schema migrations.

Each migration is a function registered with :func:`migration`; its name is recorded in the ``_migrations`` table
when applied, so it runs once per database. Migrations are never edited or reordered after release: a schema change
is a new function appended to the list.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Callable

import sqlite_utils

MigrationFn = Callable[[sqlite_utils.Database], None]

MIGRATIONS_TABLE = "_migrations"

_REGISTRY: list[tuple[str, MigrationFn]] = []


def migration(fn: MigrationFn) -> MigrationFn:
    """Register ``fn`` as the next migration, named after the function."""
    if any(name == fn.__name__ for name, _ in _REGISTRY):
        raise ValueError(f"duplicate migration name {fn.__name__!r}")
    _REGISTRY.append((fn.__name__, fn))
    return fn


def registered() -> list[str]:
    """Names of all known migrations, in the order they apply."""
    return [name for name, _ in _REGISTRY]


def applied(db: sqlite_utils.Database) -> list[str]:
    """Names of the migrations already applied to ``db``, oldest first."""
    if MIGRATIONS_TABLE not in db.table_names():
        return []
    return [row["name"] for row in db[MIGRATIONS_TABLE].rows_where(order_by="id")]


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply every registered migration ``db`` lacks, each in its own transaction.

    Returns:
        The names of the migrations applied by this call.
    """
    db[MIGRATIONS_TABLE].create(
        {"id": int, "name": str, "applied": str}, pk="id", not_null={"name", "applied"}, if_not_exists=True
    )
    done = set(applied(db))
    ran: list[str] = []
    for name, fn in _REGISTRY:
        if name in done:
            continue
        with db.conn:
            fn(db)
            db[MIGRATIONS_TABLE].insert(
                {"name": name, "applied": _dt.datetime.now(_dt.timezone.utc).isoformat()}
            )
        ran.append(name)
    return ran


# --- the migrations, oldest first -------------------------------------------------------------------------------


@migration
def m001_conversations_and_messages(db: sqlite_utils.Database) -> None:
    """Conversations, their messages, and full-text search over message content."""
    db["conversations"].create(
        {
            "id": int,
            "title": str,
            "created": str,
            "updated": str,
            "model": str,
            "settings": str,  # JSON object: system prompt and sampling overrides
        },
        pk="id",
        not_null={"title", "created", "updated"},
        defaults={"settings": "{}"},
    )
    db["messages"].create(
        {
            "id": int,
            "conversation_id": int,
            "role": str,
            "content": str,
            "created": str,
            "model": str,
            "stats": str,  # JSON object: token counts, timings, finish reason
        },
        pk="id",
        not_null={"conversation_id", "role", "content", "created"},
        defaults={"content": "", "stats": "{}"},
        foreign_keys=[("conversation_id", "conversations", "id")],
    )
    db["messages"].create_index(["conversation_id", "id"])
    db["conversations"].create_index(["updated"])
    db["messages"].enable_fts(["content"], create_triggers=True, tokenize="porter")


@migration
def m002_models(db: sqlite_utils.Database) -> None:
    """The model library catalogue: one row per local GGUF file."""
    db["models"].create(
        {
            "name": str,  # unique short name used on the CLI and the API
            "path": str,
            "size": int,
            "repo_id": str,
            "filename": str,
            "sha256": str,
            "quantization": str,
            "architecture": str,
            "parameters": int,
            "context_length": int,
            "chat_template": int,  # 1 when the file carries its own chat template
            "vocab_fingerprint": str,
            "aliases": str,  # JSON list of alternative names
            "added": str,
            "last_used": str,
        },
        pk="name",
        not_null={"path", "size", "added"},
        defaults={"aliases": "[]"},
    )


@migration
def m003_downloads(db: sqlite_utils.Database) -> None:
    """Model downloads: one row per model (job) and one per file (shard), so a restart resumes them."""
    db["downloads"].create(
        {
            "id": int,
            "repo_id": str,
            "revision": str,  # the commit the files are pinned to
            "model_file": str,  # the model's file name in the repo (a split model's group name)
            "name": str,  # library name to register when done
            "state": str,  # queued / running / paused / failed / done / cancelled
            "error": str,
            "created": str,
            "updated": str,
        },
        pk="id",
        not_null={"repo_id", "revision", "model_file", "state", "created", "updated"},
    )
    db["download_files"].create(
        {
            "id": int,
            "download_id": int,
            "idx": int,  # 1-based shard index
            "path": str,  # path in the repo
            "size": int,
            "sha256": str,
            "done": int,  # bytes verified-written so far (the partial file's length is authoritative)
        },
        pk="id",
        not_null={"download_id", "idx", "path", "size"},
        defaults={"done": 0},
        foreign_keys=[("download_id", "downloads", "id")],
    )
    db["download_files"].create_index(["download_id", "idx"], unique=True)


@migration
def m004_routing_decisions(db: sqlite_utils.Database) -> None:
    """Every routing decision: which tier answered, the escalation score and signals (kept to calibrate the
    threshold that holds the user's target escalation rate)."""
    db["routing_decisions"].create(
        {
            "id": int,
            "created": str,
            "conversation_id": int,  # NULL for requests outside a stored conversation (API, benchmarks)
            "message_id": int,  # the reply it produced, when stored
            "policy": str,  # auto / cascade / forced
            "tier": str,  # small / large
            "forced": int,
            "escalated": int,
            "score": float,  # NULL when the tier was forced
            "threshold": float,
            "signals": str,  # JSON object of the features the score was computed from
            "decision_ms": float,
            "small_model": str,
            "large_target": str,  # library model name or remote base URL
            "error": str,  # the large tier failed and the small answer was kept
        },
        pk="id",
        not_null={"created", "policy", "tier"},
        defaults={"signals": "{}", "forced": 0, "escalated": 0},
    )
    db["routing_decisions"].create_index(["policy", "id"])
    db["routing_decisions"].create_index(["conversation_id"])


@migration
def m005_message_versions(db: sqlite_utils.Database) -> None:
    """Reply and message versions: each message names the message it follows (``parent_id``, a tree), and each
    conversation the end of the branch it shows (``leaf_id``). Existing conversations become one straight
    branch, each message following the one before it."""
    db["messages"].add_column("parent_id", int)
    db["conversations"].add_column("leaf_id", int)
    db.execute("UPDATE messages SET parent_id = (SELECT MAX(p.id) FROM messages AS p "
               "WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id)")
    db.execute("UPDATE conversations SET leaf_id = (SELECT MAX(m.id) FROM messages AS m "
               "WHERE m.conversation_id = conversations.id)")
    db["messages"].create_index(["conversation_id", "parent_id"])


@migration
def m006_system_prompt_presets(db: sqlite_utils.Database) -> None:
    """Named system prompts (presets) shared by the desktop and ``ember chat --preset``."""
    db["presets"].create(
        {"name": str, "prompt": str, "created": str, "updated": str},
        pk="name",
        not_null={"prompt", "created", "updated"},
        defaults={"prompt": ""},
    )


@migration
def m007_mcp_tool_calls(db: sqlite_utils.Database) -> None:
    """Tool calls a reply made through MCP (desktop): the call as the model wrote it, whether the user allowed
    it, and the tool's result, kept with the conversation."""
    db.execute(
        "CREATE TABLE tool_calls ("
        " id INTEGER PRIMARY KEY,"
        " conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
        " message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"  # the reply that called
        " idx INTEGER NOT NULL,"  # position among the reply's calls
        " call_id TEXT NOT NULL,"
        " name TEXT NOT NULL,"  # the tool's name as the model saw it
        " server TEXT,"  # the MCP server that has it (NULL: no enabled server had it)
        " arguments TEXT NOT NULL DEFAULT '{}',"  # JSON object text
        " state TEXT NOT NULL,"  # pending / running / done / error / denied
        " result TEXT NOT NULL DEFAULT '',"  # the tool's output, or the error message
        " created TEXT NOT NULL,"
        " updated TEXT NOT NULL)")
    db.execute("CREATE INDEX idx_tool_calls_message ON tool_calls (message_id, idx)")
    db.execute("CREATE INDEX idx_tool_calls_conversation ON tool_calls (conversation_id)")


@migration
def m008_chat_attachments(db: sqlite_utils.Database) -> None:
    """Files attached in the chat: the extracted text, its chunks with embedding vectors and full-text search,
    and the context each user message sent to the model (so a restart sends the same prompt)."""
    db.execute(
        "CREATE TABLE attachments ("
        " id INTEGER PRIMARY KEY,"
        " conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
        " message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,"  # NULL until its message is sent
        " name TEXT NOT NULL,"
        " kind TEXT NOT NULL,"  # text / pdf
        " pages INTEGER NOT NULL DEFAULT 1,"
        " chars INTEGER NOT NULL,"
        " mode TEXT NOT NULL,"  # whole (sent whole) / chunks (parts retrieved per question)
        " cut_chars INTEGER NOT NULL DEFAULT 0,"  # characters left out (file larger than Ember keeps)
        " text TEXT NOT NULL,"
        " created TEXT NOT NULL)")
    db.execute("CREATE INDEX idx_attachments_conversation ON attachments (conversation_id)")
    db.execute(
        "CREATE TABLE attachment_chunks ("
        " id INTEGER PRIMARY KEY,"
        " attachment_id INTEGER NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,"
        " part INTEGER NOT NULL,"  # 1-based part number shown to the user
        " page INTEGER,"  # the PDF page the part starts on
        " text TEXT NOT NULL,"
        " vector BLOB)")  # float32 unit vector from the engine's embeddings (NULL: keyword search only)
    db.execute("CREATE INDEX idx_attachment_chunks ON attachment_chunks (attachment_id, part)")
    db["attachment_chunks"].enable_fts(["text"], create_triggers=True, tokenize="porter")
    db.execute(
        "CREATE TABLE message_context ("
        " message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,"
        " text TEXT NOT NULL,"  # file text sent to the model before the user's words
        " sources TEXT NOT NULL DEFAULT '[]')")  # JSON list of {"file", "part", "page"}


# The sampling options a conversation could store when m009 was written (app.services.conversation_settings reads them
# into SamplingOptions); a migration keeps its own copy, as the declaration may change later.
_M009_SAMPLING_KEYS = frozenset({"temperature", "top_p", "top_k", "min_p", "repeat_penalty", "repeat_last_n",
                                 "dry_multiplier", "seed", "max_tokens", "stop", "stop_loops", "ignore_eos"})


@migration
def m009_conversation_settings_shape(db: sqlite_utils.Database) -> None:
    """Stored conversation settings in the shape ``ConversationSettings`` reads: an object; ``sampling`` an
    object of known options only (an unknown key no longer makes the whole stored sampling invalid); empty
    ``router``/``router_large`` and null values left out."""
    for row in list(db.execute("SELECT id, settings FROM conversations").fetchall()):
        try:
            original = json.loads(row[1] or "{}")
        except ValueError:
            original = None
        settings = original if isinstance(original, dict) else {}
        shaped = {k: v for k, v in settings.items() if v is not None and not (k in ("router", "router_large")
                                                                               and v == "")}
        sampling = shaped.get("sampling")
        if sampling is not None:
            if isinstance(sampling, dict):
                shaped["sampling"] = {k: v for k, v in sampling.items() if k in _M009_SAMPLING_KEYS}
            if not isinstance(sampling, dict) or not shaped["sampling"]:  # nothing known: the settings' sampling
                del shaped["sampling"]
        if shaped != original:
            db.execute("UPDATE conversations SET settings = ? WHERE id = ?", [json.dumps(shaped), row[0]])


@migration
def m010_route_labels(db: sqlite_utils.Database) -> None:
    """What the user said of routed replies (``route_labels``: one label per decision, wrong when they escalated a
    small answer, right when they went on from it) and what the router learned from them (``route_learned``: one
    state per policy, JSON of :meth:`inference.route_learning.OnlineRouter.state`)."""
    db.execute(
        "CREATE TABLE route_labels ("
        " id INTEGER PRIMARY KEY,"
        " decision_id INTEGER NOT NULL UNIQUE REFERENCES routing_decisions(id) ON DELETE CASCADE,"
        " conversation_id INTEGER,"
        " message_id INTEGER,"  # the reply the decision produced
        " policy TEXT NOT NULL,"  # auto / cascade
        " wrong INTEGER NOT NULL,"  # 1: the small answer was escalated by the user; 0: kept
        " source TEXT NOT NULL,"  # large-prefix / ask-large / regenerate-large / next-message
        " created TEXT NOT NULL)")
    db.execute("CREATE INDEX idx_route_labels_policy ON route_labels (policy, id)")
    db.execute(
        "CREATE TABLE route_learned ("
        " policy TEXT PRIMARY KEY,"
        " state TEXT NOT NULL,"
        " updated TEXT NOT NULL)")
