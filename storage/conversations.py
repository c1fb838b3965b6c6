"""Conversations and their messages, with full-text search and crash-safe streaming writes."""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from storage.database import database_lock
from storage.errors import NotFoundError, StorageError


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


@dataclass(frozen=True)
class SearchHit:
    """A message that matched a full-text query, with a highlighted snippet."""

    conversation_id: int
    message_id: int
    snippet: str


ROLES = ("system", "user", "assistant")


class ConversationStore:
    """Reads and writes conversations and messages; safe to share between threads."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = database_lock(db)

    # -- conversations -------------------------------------------------------------------------------------------

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

    def list(self, *, limit: int | None = None) -> list[Conversation]:
        """Conversations, most recently updated first."""
        with self._lock:
            rows = self._db["conversations"].rows_where(order_by="updated desc, id desc", limit=limit)
            return [_conversation(r) for r in rows]

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

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and all its messages."""
        self.get(conversation_id)
        with self._lock, self._db.conn:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ?", [conversation_id])
            self._db.execute("DELETE FROM conversations WHERE id = ?", [conversation_id])

    # -- messages ------------------------------------------------------------------------------------------------

    def add_message(self, conversation_id: int, role: str, content: str, *, model: str | None = None,
                    stats: dict[str, Any] | None = None) -> Message:
        """Append a message to a conversation and mark the conversation updated."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        stamp = now_iso()
        with self._lock, self._db.conn:
            self.get(conversation_id)
            table = self._db["messages"].insert(
                {"conversation_id": conversation_id, "role": role, "content": content, "created": stamp,
                 "model": model, "stats": json.dumps(stats or {})}
            )
            self._db["conversations"].update(conversation_id, {"updated": stamp})
            return self.message(table.last_pk)

    def set_message_content(self, message_id: int, content: str, *, stats: dict[str, Any] | None = None) -> None:
        """Overwrite a message's text (and stats when given); used while a reply streams."""
        changes: dict[str, Any] = {"content": content}
        if stats is not None:
            changes["stats"] = json.dumps(stats)
        try:
            with self._lock, self._db.conn:
                self._db["messages"].update(message_id, changes)
        except sqlite3.OperationalError as exc:
            raise StorageError(f"Ember could not save the reply ({exc}). Free some disk space; the text "
                               "shown so far was saved up to the last successful write.") from exc

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

    def messages(self, conversation_id: int) -> list[Message]:
        """A conversation's messages, oldest first."""
        with self._lock:
            rows = self._db["messages"].rows_where("conversation_id = ?", [conversation_id], order_by="id")
            return [_message(r) for r in rows]

    def delete_messages_from(self, message_id: int) -> None:
        """Delete a message and every later message of its conversation (for regenerate and edit-and-resend)."""
        msg = self.message(message_id)
        with self._lock, self._db.conn:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                             [msg.conversation_id, message_id])

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
    loses at most that much text. Call :meth:`finish` with the final stats when the reply ends.
    """

    def __init__(self, store: ConversationStore, conversation_id: int, *, model: str | None,
                 flush_interval: float = 0.5) -> None:
        self._store = store
        self._interval = flush_interval
        self._parts: list[str] = []
        self._dirty = False
        self.message = store.add_message(conversation_id, "assistant", "", model=model,
                                         stats={"finish_reason": "streaming"})
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
                        model=row["model"], settings=json.loads(row["settings"] or "{}"))


def _message(row: dict[str, Any]) -> Message:
    return Message(id=row["id"], conversation_id=row["conversation_id"], role=row["role"],
                   content=row["content"], created=row["created"], model=row["model"],
                   stats=json.loads(row["stats"] or "{}"))
