"""The routing decisions table: one row per routed reply, and the stored scores the threshold is calibrated on."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from storage.conversations import now_iso
from storage.database import database_lock
from storage.errors import StorageError


@dataclass(frozen=True)
class RoutingRecord:
    """A stored decision."""

    id: int
    created: str
    conversation_id: int | None
    message_id: int | None
    policy: str
    tier: str
    forced: bool
    escalated: bool
    score: float | None
    threshold: float | None
    signals: dict[str, float]
    decision_ms: float | None
    small_model: str | None
    large_target: str | None
    error: str | None


class RoutingStore:
    """Reads and writes ``routing_decisions`` (thread-safe: the router records from its own threads)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = database_lock(db)

    def record(self, *, policy: str, tier: str, score: float | None, threshold: float | None,
               signals: dict[str, float], decision_ms: float, conversation_id: int | None = None,
               message_id: int | None = None, forced: bool = False, escalated: bool = False,
               small_model: str | None = None, large_target: str | None = None,
               error: str | None = None) -> int:
        """Store one decision; returns its id.

        Raises:
            StorageError: the database could not be written (disk full, read-only).
        """
        row = {"created": now_iso(), "conversation_id": conversation_id, "message_id": message_id,
               "policy": policy, "tier": tier, "forced": int(forced), "escalated": int(escalated), "score": score,
               "threshold": threshold, "signals": json.dumps(signals, sort_keys=True),
               "decision_ms": round(decision_ms, 3), "small_model": small_model, "large_target": large_target,
               "error": error}
        try:
            with self._lock, self._db.conn:
                return int(self._db["routing_decisions"].insert(row).last_pk)
        except sqlite3.Error as exc:
            raise StorageError(f"Could not store the routing decision ({exc}).") from exc

    def recent_scores(self, policy: str, *, limit: int = 1000) -> list[float]:
        """The scores of the last ``limit`` unforced decisions made under ``policy`` (newest first)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT score FROM routing_decisions WHERE policy = ? AND forced = 0 AND score IS NOT NULL "
                "ORDER BY id DESC LIMIT ?", [policy, limit]).fetchall()
        return [float(r[0]) for r in rows]

    def list(self, *, conversation_id: int | None = None, limit: int = 100) -> list[RoutingRecord]:
        """Stored decisions, newest first (of one conversation when given)."""
        where, args = ("conversation_id = ?", [conversation_id]) if conversation_id is not None else (None, [])
        with self._lock:
            rows = list(self._db["routing_decisions"].rows_where(where, args, order_by="id desc", limit=limit))
        return [_record(r) for r in rows]


def _record(r: dict[str, Any]) -> RoutingRecord:
    return RoutingRecord(id=r["id"], created=r["created"], conversation_id=r["conversation_id"],
                         message_id=r["message_id"], policy=r["policy"], tier=r["tier"], forced=bool(r["forced"]),
                         escalated=bool(r["escalated"]), score=r["score"], threshold=r["threshold"],
                         signals=json.loads(r["signals"] or "{}"), decision_ms=r["decision_ms"],
                         small_model=r["small_model"], large_target=r["large_target"], error=r["error"])
