"""Replies left streaming by a process that ended (killed, crashed, power lost) become ``interrupted``.

A streaming reply is stored with ``finish_reason: "streaming"`` and the process writing it (``writer``: its pid and,
on Linux, its start time, so a reused pid is not taken for it). When the store opens, every streaming reply whose
writer is no longer running is marked ``interrupted``, keeping the text written so far. A reply that another live
Ember process (or this one) is writing is left alone, so opening the store beside a running app changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import sqlite_utils

STREAMING = "streaming"
INTERRUPTED = "interrupted"


def writer_tag(pid: int | None = None) -> str:
    """``"PID:START"`` naming a running process (this one by default); START is empty where unknown."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid) or ''}"


def streaming_stats() -> dict[str, Any]:
    """The stats of a reply this process starts streaming."""
    return {"finish_reason": STREAMING, "writer": writer_tag()}


def writer_alive(tag: object) -> bool:
    """Whether the process named by ``tag`` (from :func:`writer_tag`) still runs; False for a missing tag."""
    if not isinstance(tag, str) or ":" not in tag:
        return False
    pid_text, start = tag.split(":", 1)
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return start == (_start_time(pid) or "")
    if os.name != "posix" or pid <= 0:
        return False  # os.kill would end the process on Windows: another Ember's replies count as ended
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it runs, as another user
    return not start or start == (_start_time(pid) or start)


def mark_interrupted(db: sqlite_utils.Database) -> int:
    """Mark every streaming reply whose writer has ended ``interrupted`` (text kept); returns how many.

    The caller holds the database's lock and commits (``storage.database.open_database`` does, once per open).
    """
    rows = db.execute("SELECT id, stats FROM messages WHERE role = 'assistant' AND stats LIKE ?",
                      [f'%"{STREAMING}"%']).fetchall()
    marked = 0
    for message_id, text in rows:
        try:
            stats = json.loads(text or "{}")
        except ValueError:
            continue
        if not isinstance(stats, dict) or stats.get("finish_reason") != STREAMING:
            continue
        if writer_alive(stats.get("writer")):
            continue
        stats.pop("writer", None)
        stats["finish_reason"] = INTERRUPTED
        db.execute("UPDATE messages SET stats = ? WHERE id = ?", [json.dumps(stats), message_id])
        marked += 1
    return marked


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None where it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None
