"""The downloads' rows: one per model being fetched (``downloads``) and one per file of it (``download_files``),
so a restart resumes them. SQL only; the queue and the transfers are ``models.downloads``'."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable

import sqlite_utils

from storage.conversations import now_iso
from storage.database import database_lock
from storage.errors import NotFoundError


class DownloadState(str, Enum):
    """Where a download stands."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    DONE = "done"
    CANCELLED = "cancelled"


FINISHED = (DownloadState.DONE, DownloadState.CANCELLED)


@dataclass(frozen=True)
class DownloadFile:
    """One file of a download (a shard, or the model's only file)."""

    id: int
    idx: int
    path: str
    size: int
    sha256: str | None
    done: int


@dataclass(frozen=True)
class Download:
    """One model being fetched from the Hub."""

    id: int
    repo_id: str
    revision: str
    model_file: str
    name: str | None
    state: DownloadState
    error: str | None
    files: tuple[DownloadFile, ...]

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def done(self) -> int:
        return sum(f.done for f in self.files)


class DownloadStore:
    """The ``downloads`` and ``download_files`` tables of a migrated database (its shared lock held per call)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = database_lock(db)

    def insert(self, *, repo_id: str, revision: str, model_file: str, name: str | None,
               files: Iterable[tuple[str, int, str | None]]) -> int:
        """A new queued download of ``files`` (path, size, sha256 each, in order); returns its id."""
        stamp = now_iso()
        with self._lock, self._db.conn:
            dl_id = self._db["downloads"].insert({
                "repo_id": repo_id, "revision": revision, "model_file": model_file, "name": name,
                "state": DownloadState.QUEUED.value, "error": None, "created": stamp, "updated": stamp,
            }).last_pk
            self._db["download_files"].insert_all(
                {"download_id": dl_id, "idx": i, "path": path, "size": size, "sha256": sha256, "done": 0}
                for i, (path, size, sha256) in enumerate(files, start=1)
            )
        return dl_id

    def get(self, download_id: int) -> Download:
        """One download by id.

        Raises:
            NotFoundError: no such download.
        """
        with self._lock:
            rows = list(self._db["downloads"].rows_where("id = ?", [download_id]))
            if not rows:
                raise NotFoundError(f"There is no download {download_id}. `ember models pull` lists and "
                                    "resumes downloads.")
            files = self._db["download_files"].rows_where("download_id = ?", [download_id], order_by="idx")
            return _download(rows[0], list(files))

    def list(self) -> list[Download]:
        """Every download, oldest first."""
        with self._lock:
            return [self.get(r["id"]) for r in self._db["downloads"].rows_where(order_by="id")]

    def find_unfinished(self, repo_id: str, model_file: str) -> Download | None:
        """The newest download of ``model_file`` from ``repo_id`` that is neither done nor cancelled."""
        with self._lock:
            rows = list(self._db["downloads"].rows_where(
                "repo_id = ? AND model_file = ? AND state NOT IN (?, ?)",
                [repo_id, model_file, DownloadState.DONE.value, DownloadState.CANCELLED.value], order_by="id desc"))
            return self.get(rows[0]["id"]) if rows else None

    def next_queued(self) -> int | None:
        """The id of the oldest queued download."""
        with self._lock:
            rows = list(self._db["downloads"].rows_where("state = ?", [DownloadState.QUEUED.value], order_by="id",
                                                         limit=1))
        return rows[0]["id"] if rows else None

    def set_state(self, download_id: int, state: DownloadState, error: str | None) -> None:
        """Record a download's state and error message (None: no error)."""
        with self._lock, self._db.conn:
            self._db.execute("UPDATE downloads SET state = ?, error = ?, updated = ? WHERE id = ?",
                             [state.value, error, now_iso(), download_id])

    def save_done(self, file_id: int, done: int) -> None:
        """Record how many bytes of a file are on disk."""
        with self._lock, self._db.conn:
            self._db.execute("UPDATE download_files SET done = ? WHERE id = ?", [done, file_id])

    def requeue_running(self) -> None:
        """Queue again the downloads that were running when the process died (they resume)."""
        with self._lock, self._db.conn:
            self._db.execute("UPDATE downloads SET state = ? WHERE state = ?",
                             [DownloadState.QUEUED.value, DownloadState.RUNNING.value])


def _download(row: dict[str, Any], files: list[dict[str, Any]]) -> Download:
    return Download(
        id=row["id"], repo_id=row["repo_id"], revision=row["revision"], model_file=row["model_file"],
        name=row["name"], state=DownloadState(row["state"]), error=row["error"],
        files=tuple(DownloadFile(id=f["id"], idx=f["idx"], path=f["path"], size=f["size"], sha256=f["sha256"],
                                 done=f["done"]) for f in files),
    )
