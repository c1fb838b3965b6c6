"""Tool calls a reply made (desktop MCP tools) and their results, stored with the conversation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

from storage.conversations import now_iso
from storage.database import database_lock
from storage.errors import NotFoundError

STATES = ("pending", "running", "done", "error", "denied")


@dataclass(frozen=True)
class StoredCall:
    """One call of a reply: the tool, its arguments (JSON text), its state and result text."""

    id: int
    conversation_id: int
    message_id: int
    idx: int
    call_id: str
    name: str
    server: str | None
    arguments: str
    state: str
    result: str

    @property
    def finished(self) -> bool:
        """The call ran (or failed, or was denied): nothing more will happen to it."""
        return self.state in ("done", "error", "denied")


class ToolCallStore:
    """Reads and writes stored tool calls; safe to share between threads."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = database_lock(db)

    def add(self, conversation_id: int, message_id: int, idx: int, *, call_id: str, name: str,
            server: str | None, arguments: str) -> StoredCall:
        """Store a call a reply made, waiting for the user's answer (``pending``)."""
        stamp = now_iso()
        with self._lock, self._db.conn:
            cur = self._db.execute(
                "INSERT INTO tool_calls (conversation_id, message_id, idx, call_id, name, server, arguments, state,"
                " result, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', '', ?, ?)",
                [conversation_id, message_id, idx, call_id, name, server, arguments, stamp, stamp])
            return self.get(cur.lastrowid)

    def get(self, call_row_id: int) -> StoredCall:
        """The call with this row id.

        Raises:
            NotFoundError: no such call.
        """
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM tool_calls WHERE id = ?", [call_row_id]).fetchone()
        if row is None:
            raise NotFoundError(f"There is no tool call {call_row_id}.")
        return _call(row)

    def for_message(self, message_id: int) -> list[StoredCall]:
        """A reply's calls, in the order it made them."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM tool_calls WHERE message_id = ? ORDER BY idx",
                                    [message_id]).fetchall()
        return [_call(r) for r in rows]

    def for_conversation(self, conversation_id: int) -> dict[int, list[StoredCall]]:
        """Every call of a conversation, by the reply that made it."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM tool_calls WHERE conversation_id = ? "
                                    "ORDER BY message_id, idx", [conversation_id]).fetchall()
        out: dict[int, list[StoredCall]] = {}
        for r in rows:
            call = _call(r)
            out.setdefault(call.message_id, []).append(call)
        return out

    def set_state(self, call_row_id: int, state: str, result: str | None = None) -> StoredCall:
        """Record what happened to a call (and its result or error text)."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, not {state!r}")
        changes: dict[str, Any] = {"state": state, "updated": now_iso()}
        if result is not None:
            changes["result"] = result
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self._lock, self._db.conn:
            self._db.execute(f"UPDATE tool_calls SET {sets} WHERE id = ?", [*changes.values(), call_row_id])
        return self.get(call_row_id)


_COLUMNS = "id, conversation_id, message_id, idx, call_id, name, server, arguments, state, result"


def _call(row: Any) -> StoredCall:
    return StoredCall(*row)
