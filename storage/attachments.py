"""Files attached in the chat: their text, their parts (chunks) with embedding vectors and full-text search, and
the file context each user message sent to the model."""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field
from typing import Any, Sequence

import sqlite_utils

from storage.conversations import now_iso
from storage.database import database_lock
from storage.errors import NotFoundError


@dataclass(frozen=True)
class Attachment:
    """One attached file: ``mode`` ``whole`` (sent whole) or ``chunks`` (relevant parts retrieved per question);
    ``cut_chars`` characters were left out because the file is larger than Ember keeps."""

    id: int
    conversation_id: int
    message_id: int | None
    name: str
    kind: str
    pages: int
    chars: int
    mode: str
    cut_chars: int


@dataclass(frozen=True)
class Chunk:
    """One part of a split file."""

    id: int
    attachment_id: int
    part: int
    page: int | None
    text: str
    vector: list[float] | None = None


@dataclass(frozen=True)
class MessageContext:
    """The file text a user message sent before its own words, and which files and parts it came from."""

    message_id: int
    text: str
    sources: list[dict[str, Any]] = field(default_factory=list)


class AttachmentStore:
    """Reads and writes attachments and their chunks; safe to share between threads."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = database_lock(db)

    def add(self, conversation_id: int, *, name: str, kind: str, pages: int, text: str, mode: str,
            cut_chars: int = 0, chunks: Sequence[tuple[int, int | None, str, Sequence[float] | None]] = ()
            ) -> Attachment:
        """Store a file (not yet sent: no message) with its chunks ``(part, page, text, vector)``, in one
        transaction."""
        with self._lock, self._db.conn:
            cur = self._db.execute(
                "INSERT INTO attachments (conversation_id, message_id, name, kind, pages, chars, mode, cut_chars,"
                " text, created) VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                [conversation_id, name, kind, pages, len(text), mode, cut_chars, text, now_iso()])
            att_id = cur.lastrowid
            for part, page, chunk_text, vector in chunks:
                blob = array("f", vector).tobytes() if vector is not None else None
                self._db.execute("INSERT INTO attachment_chunks (attachment_id, part, page, text, vector) "
                                 "VALUES (?, ?, ?, ?, ?)", [att_id, part, page, chunk_text, blob])
            return self.get(att_id)

    def get(self, attachment_id: int) -> Attachment:
        """The attachment with this id.

        Raises:
            NotFoundError: no such attachment.
        """
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM attachments WHERE id = ?", [attachment_id]).fetchone()
        if row is None:
            raise NotFoundError(f"There is no attachment {attachment_id}.")
        return Attachment(*row)

    def text(self, attachment_id: int) -> str:
        """The file's (kept) text."""
        with self._lock:
            row = self._db.execute("SELECT text FROM attachments WHERE id = ?", [attachment_id]).fetchone()
        if row is None:
            raise NotFoundError(f"There is no attachment {attachment_id}.")
        return row[0]

    def for_conversation(self, conversation_id: int) -> list[Attachment]:
        """The conversation's files, oldest first (sent ones and those waiting for the next message)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM attachments WHERE conversation_id = ? ORDER BY id",
                                    [conversation_id]).fetchall()
        return [Attachment(*r) for r in rows]

    def pending(self, conversation_id: int) -> list[Attachment]:
        """Files attached but not yet sent with a message."""
        return [a for a in self.for_conversation(conversation_id) if a.message_id is None]

    def link(self, attachment_ids: Sequence[int], message_id: int) -> None:
        """Mark files as sent with a user message."""
        with self._lock, self._db.conn:
            for att_id in attachment_ids:
                self._db.execute("UPDATE attachments SET message_id = ? WHERE id = ?", [message_id, att_id])

    def remove(self, attachment_id: int) -> None:
        """Forget a file that was not sent (its chunks go with it)."""
        with self._lock, self._db.conn:
            self._db.execute("DELETE FROM attachment_chunks WHERE attachment_id = ?", [attachment_id])
            self._db.execute("DELETE FROM attachments WHERE id = ?", [attachment_id])

    def chunks(self, conversation_id: int) -> list[Chunk]:
        """Every chunk of the conversation's split files, with its vector."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.attachment_id, c.part, c.page, c.text, c.vector FROM attachment_chunks AS c "
                "JOIN attachments AS a ON a.id = c.attachment_id WHERE a.conversation_id = ? ORDER BY c.id",
                [conversation_id]).fetchall()
        return [Chunk(r[0], r[1], r[2], r[3], r[4], _vector(r[5])) for r in rows]

    def keyword_scores(self, conversation_id: int, query: str, *, limit: int = 50) -> dict[int, float]:
        """FTS5 (BM25) scores of the conversation's chunks for ``query``'s words, by chunk id (higher is better;
        any word may match)."""
        words = [w for w in "".join(c if c.isalnum() else " " for c in query).split() if len(w) > 1]
        if not words:
            return {}
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        sql = ("SELECT c.id, bm25(attachment_chunks_fts) FROM attachment_chunks_fts "
               "JOIN attachment_chunks AS c ON c.rowid = attachment_chunks_fts.rowid "
               "JOIN attachments AS a ON a.id = c.attachment_id "
               "WHERE attachment_chunks_fts MATCH ? AND a.conversation_id = ? "
               "ORDER BY bm25(attachment_chunks_fts) LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, [match, conversation_id, limit]).fetchall()
        return {r[0]: -float(r[1]) for r in rows}  # bm25() is lower for better matches

    # -- what a message sent -------------------------------------------------------------------------------------

    def set_context(self, message_id: int, text: str, sources: list[dict[str, Any]]) -> None:
        """Record the file context a user message sends to the model."""
        with self._lock, self._db.conn:
            self._db.execute("INSERT OR REPLACE INTO message_context (message_id, text, sources) VALUES (?, ?, ?)",
                             [message_id, text, json.dumps(sources)])

    def contexts(self, message_ids: Sequence[int]) -> dict[int, MessageContext]:
        """The stored contexts of these messages (those that have one)."""
        if not message_ids:
            return {}
        marks = ", ".join("?" for _ in message_ids)
        with self._lock:
            rows = self._db.execute(f"SELECT message_id, text, sources FROM message_context "
                                    f"WHERE message_id IN ({marks})", list(message_ids)).fetchall()
        return {r[0]: MessageContext(r[0], r[1], json.loads(r[2] or "[]")) for r in rows}


_COLUMNS = "id, conversation_id, message_id, name, kind, pages, chars, mode, cut_chars"


def _vector(blob: bytes | None) -> list[float] | None:
    if not blob:
        return None
    values = array("f")
    values.frombytes(blob)
    return values.tolist()
