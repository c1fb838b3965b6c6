"""The routing decisions table: one row per routed reply, and the stored scores the threshold is calibrated on;
the user's labels of those decisions and the state the router learned from them."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from storage.conversations import now_iso
from storage.database import database_lock
from storage.errors import StorageError


LABEL_SOURCES = ("large-prefix", "ask-large", "regenerate-large", "next-message")


@dataclass(frozen=True)
class RouteLabel:
    """A stored label of one decision: ``wrong`` when the user escalated the small answer."""

    decision_id: int
    conversation_id: int | None
    message_id: int | None
    policy: str
    wrong: bool
    source: str
    created: str


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

    def decision(self, decision_id: int) -> RoutingRecord | None:
        """The stored decision ``decision_id`` (None when there is none)."""
        with self._lock:
            rows = list(self._db["routing_decisions"].rows_where("id = ?", [decision_id]))
        return _record(rows[0]) if rows else None

    def latest_decision(self, *, conversation_id: int | None = None, message_id: int | None = None
                        ) -> RoutingRecord | None:
        """The newest decision of reply ``message_id`` (or, without one, of conversation ``conversation_id``)."""
        if message_id is not None:
            where, args = "message_id = ?", [message_id]
        elif conversation_id is not None:
            where, args = "conversation_id = ?", [conversation_id]
        else:
            raise ValueError("give a conversation_id or a message_id")
        with self._lock:
            rows = list(self._db["routing_decisions"].rows_where(where, args, order_by="id desc", limit=1))
        return _record(rows[0]) if rows else None

    # -- labels ----------------------------------------------------------------------------------------------------

    def add_label(self, decision: RoutingRecord, *, wrong: bool, source: str) -> bool:
        """Label ``decision`` (one label per decision: a later escalation overrides an earlier acceptance, nothing
        else changes a label). Returns True when the label was stored or changed (the router learns from it).

        Raises:
            StorageError: the database could not be written.
        """
        if source not in LABEL_SOURCES:
            raise ValueError(f"unknown label source {source!r}")
        try:
            with self._lock, self._db.conn:
                row = self._db.execute("SELECT wrong FROM route_labels WHERE decision_id = ?",
                                       [decision.id]).fetchone()
                if row is not None:
                    if row[0] or not wrong:
                        return False
                    self._db.execute("UPDATE route_labels SET wrong = 1, source = ?, created = ? "
                                     "WHERE decision_id = ?", [source, now_iso(), decision.id])
                    return True
                self._db["route_labels"].insert({
                    "decision_id": decision.id, "conversation_id": decision.conversation_id,
                    "message_id": decision.message_id, "policy": decision.policy, "wrong": int(wrong),
                    "source": source, "created": now_iso()})
                return True
        except sqlite3.Error as exc:
            raise StorageError(f"Could not store the routing label ({exc}).") from exc

    def label(self, decision_id: int) -> RouteLabel | None:
        """The label of decision ``decision_id`` (None when it has none)."""
        with self._lock:
            rows = list(self._db["route_labels"].rows_where("decision_id = ?", [decision_id]))
        if not rows:
            return None
        r = rows[0]
        return RouteLabel(decision_id=r["decision_id"], conversation_id=r["conversation_id"],
                          message_id=r["message_id"], policy=r["policy"], wrong=bool(r["wrong"]), source=r["source"],
                          created=r["created"])

    def label_counts(self) -> dict[str, dict[str, int]]:
        """Labels per policy: ``{"auto": {"wrong": 3, "right": 10}, ...}``."""
        with self._lock:
            rows = self._db.execute("SELECT policy, wrong, COUNT(*) FROM route_labels GROUP BY policy, wrong"
                                    ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for policy, wrong, n in rows:
            out.setdefault(policy, {"wrong": 0, "right": 0})["wrong" if wrong else "right"] = int(n)
        return out

    # -- what the router learned -----------------------------------------------------------------------------------

    def load_learned(self, policy: str) -> dict[str, Any] | None:
        """The learned state saved for ``policy`` (None: nothing learned, or a state that no longer reads)."""
        with self._lock:
            row = self._db.execute("SELECT state FROM route_learned WHERE policy = ?", [policy]).fetchone()
        if row is None:
            return None
        try:
            state = json.loads(row[0])
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def save_learned(self, policy: str, state: dict[str, Any]) -> None:
        """Keep ``state`` as what the router learned for ``policy``.

        Raises:
            StorageError: the database could not be written.
        """
        try:
            with self._lock, self._db.conn:
                self._db["route_learned"].upsert({"policy": policy, "state": json.dumps(state, sort_keys=True),
                                                  "updated": now_iso()}, pk="policy")
        except sqlite3.Error as exc:
            raise StorageError(f"Could not store what the router learned ({exc}).") from exc

    def clear_learned(self) -> None:
        """Forget every policy's learned state (the labels stay).

        Raises:
            StorageError: the database could not be written.
        """
        try:
            with self._lock, self._db.conn:
                self._db.execute("DELETE FROM route_learned")
        except sqlite3.Error as exc:
            raise StorageError(f"Could not reset what the router learned ({exc}).") from exc


def _record(r: dict[str, Any]) -> RoutingRecord:
    return RoutingRecord(id=r["id"], created=r["created"], conversation_id=r["conversation_id"],
                         message_id=r["message_id"], policy=r["policy"], tier=r["tier"], forced=bool(r["forced"]),
                         escalated=bool(r["escalated"]), score=r["score"], threshold=r["threshold"],
                         signals=json.loads(r["signals"] or "{}"), decision_ms=r["decision_ms"],
                         small_model=r["small_model"], large_target=r["large_target"], error=r["error"])
