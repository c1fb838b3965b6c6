"""Conversations and their messages, with full-text search and crash-safe streaming writes.

Messages form a tree: each names the message it follows (``parent_id``; None for a first message). An edited
message or a regenerated reply is a new child of the same parent, so earlier versions are kept. Each conversation
names the end of the branch it shows (``leaf_id``); :meth:`ConversationStore.messages` is that branch, which is what
is shown and what is sent to the model.

A full disk, a read-only or locked file and a damaged one reach callers as their known errors
(``storage.sqlite_errors``), never as a bare ``sqlite3`` error.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import sqlite_utils

from storage.database import database_lock, database_path
from storage.errors import NotFoundError
from storage.interrupted import streaming_stats
from storage.sqlite_errors import translated

F = TypeVar("F", bound=Callable[..., Any])


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (how every timestamp is stored)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Conversation:
    """One conversation row."""

    id: int
    title: str
    created: str
    updated: str
    model: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    leaf_id: int | None = None  # the last message of the branch shown (None: no messages shown)


@dataclass(frozen=True)
class Message:
    """One message row; ``stats`` holds generation figures for assistant replies."""

    id: int
    conversation_id: int
    role: str
    content: str
    created: str
    model: str | None
    stats: dict[str, Any] = field(default_factory=dict)
    parent_id: int | None = None  # the message this one follows (None: the conversation's first message)


@dataclass(frozen=True)
class SearchHit:
    """A message that matched a full-text query, with a highlighted snippet."""

    conversation_id: int
    message_id: int
    snippet: str


@dataclass(frozen=True)
class Version:
    """Where a message stands among its versions (the messages that follow the same parent)."""

    index: int  # 1-based position of this message, oldest first
    count: int
    ids: tuple[int, ...]  # every version's message id, oldest first


class _BranchEnd:
    """Marker default of ``parent_id``: the new message follows the branch shown."""


BRANCH_END = _BranchEnd()

ROLES = ("system", "user", "assistant")


def _known_errors(doing: str) -> Callable[[F], F]:
    """Method decorator: an SQLite error that is a known error (a full disk, a read-only or locked file, a damaged
    one) is raised as that known error, saying that Ember could not ``doing``."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(self: "ConversationStore", *args: Any, **kwargs: Any) -> Any:
            with translated(database_path(self._db), doing=doing):
                return fn(self, *args, **kwargs)
        return run  # type: ignore[return-value]
    return wrap


class ConversationStore:
    """Reads and writes conversations and messages; safe to share between threads."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = database_lock(db)

    @property
    def database(self) -> sqlite_utils.Database:
        """The database this store uses (for stores of other tables that share it, e.g. presets)."""
        return self._db

    # -- conversations -------------------------------------------------------------------------------------------

    @_known_errors("create the conversation")
    def create(self, *, title: str = "New chat", model: str | None = None,
               settings: dict[str, Any] | None = None) -> Conversation:
        """Create an empty conversation."""
        stamp = now_iso()
        with self._lock, self._db.conn:
            table = self._db["conversations"].insert(
                {"title": title, "created": stamp, "updated": stamp, "model": model,
                 "settings": json.dumps(settings or {})}
            )
            return self.get(table.last_pk)

    @_known_errors("read the conversation")
    def get(self, conversation_id: int) -> Conversation:
        """The conversation with this id.

        Raises:
            NotFoundError: no such conversation.
        """
        with self._lock:
            rows = list(self._db["conversations"].rows_where("id = ?", [conversation_id]))
        if not rows:
            raise NotFoundError(f"There is no conversation {conversation_id}.")
        return _conversation(rows[0])

    @_known_errors("read the conversations")
    def list(self, *, limit: int | None = None) -> list[Conversation]:
        """Conversations, most recently updated first."""
        with self._lock:
            rows = self._db["conversations"].rows_where(order_by="updated desc, id desc", limit=limit)
            return [_conversation(r) for r in rows]

    @_known_errors("save the conversation")
    def update(self, conversation_id: int, *, title: str | None = None, model: str | None = None,
               settings: dict[str, Any] | None = None) -> Conversation:
        """Change a conversation's title, model or settings."""
        changes: dict[str, Any] = {"updated": now_iso()}
        if title is not None:
            changes["title"] = title
        if model is not None:
            changes["model"] = model
        if settings is not None:
            changes["settings"] = json.dumps(settings)
        self.get(conversation_id)
        with self._lock, self._db.conn:
            self._db["conversations"].update(conversation_id, changes)
        return self.get(conversation_id)

    @_known_errors("import the conversation")
    def restore(self, *, title: str, model: str | None, settings: dict[str, Any], created: str, updated: str,
                messages: list[dict[str, Any]], leaf: int | None) -> Conversation:
        """Write a whole conversation at once, in one transaction (an import): nothing is written if any row fails.

        Args:
            messages: rows with ``role``, ``content``, ``created``, ``model``, ``stats`` and ``parent`` (the index
                of an earlier row in this list, or None for a first message), parents before children.
            leaf: the index of the message that ends the branch shown (None: none shown).
        """
        with self._lock, self._db.conn:
            conv_id = self._db["conversations"].insert(
                {"title": title, "created": created, "updated": updated, "model": model,
                 "settings": json.dumps(settings)}).last_pk
            ids: list[int] = []
            for row in messages:
                if row["role"] not in ROLES:
                    raise ValueError(f"role must be one of {ROLES}, not {row['role']!r}")
                parent = row.get("parent")
                ids.append(self._db["messages"].insert(
                    {"conversation_id": conv_id, "role": row["role"], "content": row["content"],
                     "created": row["created"], "model": row.get("model"), "stats": json.dumps(row.get("stats") or {}),
                     "parent_id": None if parent is None else ids[parent]}).last_pk)
            self._db["conversations"].update(conv_id, {"leaf_id": None if leaf is None else ids[leaf]})
        return self.get(conv_id)

    @_known_errors("delete the conversation")
    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and all its messages."""
        self.get(conversation_id)
        with self._lock, self._db.conn:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ?", [conversation_id])
            self._db.execute("DELETE FROM conversations WHERE id = ?", [conversation_id])

    # -- messages ------------------------------------------------------------------------------------------------

    @_known_errors("save the message")
    def add_message(self, conversation_id: int, role: str, content: str, *, model: str | None = None,
                    stats: dict[str, Any] | None = None,
                    parent_id: int | None | _BranchEnd = BRANCH_END) -> Message:
        """Add a message after ``parent_id`` (default: the end of the branch shown; None: a new first message),
        show the branch it ends, and mark the conversation updated."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        stamp = now_iso()
        with self._lock, self._db.conn:
            conversation = self.get(conversation_id)
            parent = conversation.leaf_id if isinstance(parent_id, _BranchEnd) else parent_id
            if parent is not None and self.message(parent).conversation_id != conversation_id:
                raise ValueError(f"message {parent} is not part of conversation {conversation_id}")
            table = self._db["messages"].insert(
                {"conversation_id": conversation_id, "role": role, "content": content, "created": stamp,
                 "model": model, "stats": json.dumps(stats or {}), "parent_id": parent}
            )
            self._db["conversations"].update(conversation_id, {"updated": stamp, "leaf_id": table.last_pk})
            return self.message(table.last_pk)

    @_known_errors("save the reply (the text shown so far is kept up to the last successful write)")
    def set_message_content(self, message_id: int, content: str, *, stats: dict[str, Any] | None = None) -> None:
        """Overwrite a message's text (and stats when given); used while a reply streams."""
        changes: dict[str, Any] = {"content": content}
        if stats is not None:
            changes["stats"] = json.dumps(stats)
        with self._lock, self._db.conn:
            self._db["messages"].update(message_id, changes)

    @_known_errors("read the message")
    def message(self, message_id: int) -> Message:
        """The message with this id.

        Raises:
            NotFoundError: no such message.
        """
        with self._lock:
            rows = list(self._db["messages"].rows_where("id = ?", [message_id]))
        if not rows:
            raise NotFoundError(f"There is no message {message_id}.")
        return _message(rows[0])

    @_known_errors("read the conversation")
    def messages(self, conversation_id: int) -> list[Message]:
        """The branch the conversation shows, first message first (what the model is sent)."""
        sql = ("WITH RECURSIVE branch(id, depth) AS ("
               " SELECT leaf_id, 0 FROM conversations WHERE id = ? AND leaf_id IS NOT NULL"
               " UNION ALL SELECT m.parent_id, b.depth + 1 FROM messages AS m JOIN branch AS b ON m.id = b.id"
               " WHERE m.parent_id IS NOT NULL) "
               "SELECT messages.* FROM branch JOIN messages ON messages.id = branch.id ORDER BY branch.depth DESC")
        with self._lock:
            cursor = self._db.execute(sql, [conversation_id])
            names = [c[0] for c in cursor.description]
            return [_message(dict(zip(names, row))) for row in cursor.fetchall()]

    @_known_errors("read the conversation")
    def all_messages(self, conversation_id: int) -> list[Message]:
        """Every message of a conversation, every version included, oldest first."""
        with self._lock:
            rows = self._db["messages"].rows_where("conversation_id = ?", [conversation_id], order_by="id")
            return [_message(r) for r in rows]

    @_known_errors("read the conversation")
    def versions(self, conversation_id: int) -> dict[int, Version]:
        """For each message of the branch shown, its place among the versions that follow the same parent."""
        children: dict[int | None, list[int]] = {}
        with self._lock:
            for row in self._db.execute("SELECT id, parent_id FROM messages WHERE conversation_id = ? ORDER BY id",
                                        [conversation_id]).fetchall():
                children.setdefault(row[1], []).append(row[0])
        result: dict[int, Version] = {}
        for m in self.messages(conversation_id):
            ids = tuple(children.get(m.parent_id, [m.id]))
            result[m.id] = Version(index=ids.index(m.id) + 1, count=len(ids), ids=ids)
        return result

    @_known_errors("save the conversation")
    def show_branch(self, conversation_id: int, leaf_id: int | None) -> None:
        """Show the branch that ends at ``leaf_id`` (None: no message; the next one added is a first message).

        Raises:
            NotFoundError: no such conversation or message.
            ValueError: the message belongs to another conversation.
        """
        self.get(conversation_id)
        if leaf_id is not None and self.message(leaf_id).conversation_id != conversation_id:
            raise ValueError(f"message {leaf_id} is not part of conversation {conversation_id}")
        with self._lock, self._db.conn:
            self._db["conversations"].update(conversation_id, {"leaf_id": leaf_id})

    @_known_errors("save the conversation")
    def show_version(self, message_id: int) -> None:
        """Show this version of a message, continued by the latest branch that follows it."""
        message = self.message(message_id)
        sql = ("WITH RECURSIVE below(id) AS (SELECT ? UNION ALL"
               " SELECT m.id FROM messages AS m JOIN below ON m.parent_id = below.id) SELECT MAX(id) FROM below")
        with self._lock:
            latest = self._db.execute(sql, [message_id]).fetchone()[0]
        self.show_branch(message.conversation_id, latest)

    @_known_errors("search the conversations")
    def search(self, query: str, *, limit: int = 50) -> list[SearchHit]:
        """Full-text search over message content, best matches first."""
        sql = (
            "SELECT messages.id, messages.conversation_id, "
            "snippet(messages_fts, 0, '[', ']', '…', 12) AS snip "
            "FROM messages_fts JOIN messages ON messages.rowid = messages_fts.rowid "
            "WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, [_fts_query(query), limit]).fetchall()
        return [SearchHit(conversation_id=r[1], message_id=r[0], snippet=r[2]) for r in rows]


class StreamingMessage:
    """An assistant message that is written to the database while it streams.

    Text is appended as tokens arrive and flushed at most every ``flush_interval`` seconds, so a killed process
    loses at most that much text. Call :meth:`finish` with the final stats when the reply ends. Until then the
    stats name this process as the writer; a reply whose writer ended is marked ``interrupted`` when the store is
    next opened (``storage.interrupted``).
    """

    def __init__(self, store: ConversationStore, conversation_id: int, *, model: str | None,
                 flush_interval: float = 0.5) -> None:
        self._store = store
        self._interval = flush_interval
        self._parts: list[str] = []
        self._dirty = False
        self.message = store.add_message(conversation_id, "assistant", "", model=model,
                                         stats=streaming_stats())
        self._last_flush = time.monotonic()

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    def append(self, text: str) -> None:
        """Add streamed text; writes to the database when the flush interval has passed."""
        if not text:
            return
        self._parts.append(text)
        self._dirty = True
        if time.monotonic() - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Write the text received so far."""
        if self._dirty:
            self._store.set_message_content(self.message.id, self.text)
            self._dirty = False
        self._last_flush = time.monotonic()

    def reset(self) -> None:
        """Drop the text written so far (the reply starts over) and store that at once."""
        self._parts = []
        self._dirty = True
        self.flush()

    def finish(self, stats: dict[str, Any]) -> Message:
        """Write the complete text and the reply's stats."""
        self._store.set_message_content(self.message.id, self.text, stats=stats)
        self._dirty = False
        return self._store.message(self.message.id)


def _fts_query(query: str) -> str:
    """Quote each word so user text never parses as FTS syntax."""
    words = [w.replace('"', '""') for w in query.split()]
    return " ".join(f'"{w}"' for w in words) or '""'


def _conversation(row: dict[str, Any]) -> Conversation:
    return Conversation(id=row["id"], title=row["title"], created=row["created"], updated=row["updated"],
                        model=row["model"], settings=json.loads(row["settings"] or "{}"),
                        leaf_id=row.get("leaf_id"))


def _message(row: dict[str, Any]) -> Message:
    return Message(id=row["id"], conversation_id=row["conversation_id"], role=row["role"],
                   content=row["content"], created=row["created"], model=row["model"],
                   stats=json.loads(row["stats"] or "{}"), parent_id=row.get("parent_id"))
