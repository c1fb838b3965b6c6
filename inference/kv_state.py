"""Saved KV states, so returning to an earlier conversation restores its context instead of re-reading it.

States are keyed by the model (file, context settings) and the exact token sequence they hold. When the engine is
about to drop a long cached sequence (another conversation comes in), it saves the sequence's state here; when a
prompt arrives, the entry sharing the longest prefix with it is restored and only the rest is evaluated. A changed
history therefore reuses exactly the unchanged prefix, and a changed model or context setting never matches.

Entries live in RAM (least recently used first out) and spill to disk under ``cache/`` when RAM is over budget;
the disk folder is size-bounded too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

_MAGIC = b"EMBERKV1"
SUFFIX = ".kvstate"


@dataclass
class _Entry:
    model_key: str
    tokens: tuple[int, ...]
    data: bytes | None  # None when the state is only on disk
    path: Path | None
    size: int


@dataclass(frozen=True)
class SavedState:
    """A state to restore: the tokens it holds and llama.cpp's serialised sequence."""

    tokens: tuple[int, ...]
    data: bytes


class StateCache:
    """An LRU of KV states in RAM with a size-bounded spill folder on disk.

    Args:
        folder: where states spill to (None: RAM only).
        ram_budget: bytes of states kept in memory.
        disk_budget: bytes of states kept on disk.
        min_tokens: sequences shorter than this are not worth saving (re-reading them is quick).
    """

    def __init__(self, folder: Path | None, *, ram_budget: int = 512 << 20, disk_budget: int = 2 << 30,
                 min_tokens: int = 64) -> None:
        self.folder = folder
        self.ram_budget = ram_budget
        self.disk_budget = disk_budget
        self.min_tokens = min_tokens
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        if folder is not None:
            self._index_folder()

    # -- public --------------------------------------------------------------------------------------------------

    def put(self, model_key: str, tokens: Sequence[int], data: bytes) -> None:
        """Keep the state of ``tokens`` for ``model_key`` (replacing an entry for the same sequence)."""
        if len(tokens) < self.min_tokens or not data:
            return
        key = _entry_key(model_key, tokens)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None and old.path is not None:
                old.path.unlink(missing_ok=True)
            # A state whose tokens extend an older one makes the older one redundant.
            for k, e in list(self._entries.items()):
                if e.model_key == model_key and len(e.tokens) <= len(tokens) and tuple(tokens[:len(e.tokens)]) == e.tokens:
                    self._drop(k)
            self._entries[key] = _Entry(model_key, tuple(tokens), data, None, len(data))
            self._enforce_budgets()

    def best(self, model_key: str, prompt: Sequence[int], *, longer_than: int = 0) -> tuple[SavedState, int] | None:
        """The saved state sharing the longest prefix with ``prompt``, and that prefix's length.

        None when no state shares more than ``longer_than`` tokens (what the caller already has); a state on disk
        is only read when it is returned.
        """
        with self._lock:
            best_key, best_len = None, max(longer_than, 0)
            for k, e in self._entries.items():
                if e.model_key != model_key:
                    continue
                n = common_prefix(e.tokens, prompt)
                if n > best_len:
                    best_key, best_len = k, n
            if best_key is None or best_len < self.min_tokens:
                return None
            entry = self._entries[best_key]
            self._entries.move_to_end(best_key)
            data = entry.data if entry.data is not None else self._read(entry)
            if data is None:
                self._drop(best_key)
                return None
            return SavedState(entry.tokens, data), best_len

    def discard(self, model_key: str, tokens: Sequence[int]) -> bool:
        """Forget the state of ``tokens`` for ``model_key`` (e.g. one llama.cpp refused); True if there was one."""
        key = _entry_key(model_key, tokens)
        with self._lock:
            if key not in self._entries:
                return False
            self._drop(key)
            return True

    def clear(self) -> None:
        """Forget every state, in RAM and on disk."""
        with self._lock:
            for k in list(self._entries):
                self._drop(k)

    @property
    def ram_bytes(self) -> int:
        return sum(e.size for e in self._entries.values() if e.data is not None)

    @property
    def disk_bytes(self) -> int:
        return sum(e.size for e in self._entries.values() if e.path is not None)

    def __len__(self) -> int:
        return len(self._entries)

    # -- internals -----------------------------------------------------------------------------------------------

    def _enforce_budgets(self) -> None:
        for k, e in list(self._entries.items()):  # oldest first
            if self.ram_bytes <= self.ram_budget:
                break
            if e.data is None:
                continue
            if self.folder is not None and e.path is None and e.size <= self.disk_budget:
                self._spill(e)
            if e.path is None:
                self._drop(k)
            else:
                e.data = None
        for k, e in list(self._entries.items()):
            if self.disk_bytes <= self.disk_budget:
                break
            if e.path is not None and e.data is None:
                self._drop(k)

    def _spill(self, e: _Entry) -> None:
        assert self.folder is not None and e.data is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"model_key": e.model_key, "tokens": list(e.tokens)}).encode()
        final = self.folder / (_entry_key(e.model_key, e.tokens) + SUFFIX)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + struct.pack("<Q", len(meta)) + meta + e.data)
            os.replace(tmp, final)
            e.path = final
        except OSError as exc:  # a full disk only costs the saved state
            Path(tmp).unlink(missing_ok=True)
            log.info("could not save a KV state to %s: %s", self.folder, exc)

    def _read(self, e: _Entry) -> bytes | None:
        try:
            with open(e.path, "rb") as f:  # type: ignore[arg-type]
                _magic, meta_len = f.read(8), struct.unpack("<Q", f.read(8))[0]
                f.seek(meta_len, 1)
                data = f.read()
            os.utime(e.path)  # type: ignore[arg-type]
            return data
        except OSError as exc:
            log.info("saved KV state %s is unreadable: %s", e.path, exc)
            return None

    def _drop(self, key: str) -> None:
        e = self._entries.pop(key)
        if e.path is not None:
            e.path.unlink(missing_ok=True)

    def _index_folder(self) -> None:
        """Register states left on disk by an earlier run, least recently used first."""
        assert self.folder is not None
        if not self.folder.is_dir():
            return
        files = sorted(self.folder.glob("*" + SUFFIX), key=lambda p: p.stat().st_mtime)
        for path in files:
            try:
                with path.open("rb") as f:
                    if f.read(8) != _MAGIC:
                        raise ValueError("not a saved state")
                    meta_len = struct.unpack("<Q", f.read(8))[0]
                    meta = json.loads(f.read(meta_len))
                size = path.stat().st_size - 16 - meta_len
                tokens = tuple(int(t) for t in meta["tokens"])
                self._entries[_entry_key(meta["model_key"], tokens)] = _Entry(meta["model_key"], tokens, None, path,
                                                                              size)
            except (OSError, ValueError, KeyError, struct.error) as exc:
                log.info("removing unreadable saved state %s (%s)", path, exc)
                path.unlink(missing_ok=True)
        for tmp in self.folder.glob("*.tmp"):
            if time.time() - tmp.stat().st_mtime > 60:
                tmp.unlink(missing_ok=True)
        self._enforce_budgets()


def _entry_key(model_key: str, tokens: Sequence[int]) -> str:
    h = hashlib.sha1(model_key.encode())
    h.update(struct.pack(f"<{len(tokens)}i", *tokens))
    return h.hexdigest()


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
