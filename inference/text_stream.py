"""Turning generated token bytes into text: whole UTF-8 characters only, and stop strings cut cleanly."""

from __future__ import annotations

import codecs
from typing import Sequence


class TextStream:
    """Accumulates token bytes and releases text that is safe to show.

    Bytes of a character split across tokens are held until complete. Text that could be the start of a stop
    string is held until it is clear it is not; when a stop string appears, the text before it is released and
    :attr:`stopped` becomes True.
    """

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = [s for s in stop if s]
        self._hold = max((len(s) for s in self._stops), default=0)
        self._pending = ""
        self.stopped = False

    def push(self, data: bytes) -> str:
        """Add a token's bytes; returns the text now safe to emit (may be empty)."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(data)
        if not self._stops:
            out, self._pending = self._pending, ""
            return out
        first = None
        for s in self._stops:
            i = self._pending.find(s)
            if i >= 0 and (first is None or i < first):
                first = i
        if first is not None:
            out = self._pending[:first]
            self._pending = ""
            self.stopped = True
            return out
        keep = self._partial_stop_suffix()
        cut = len(self._pending) - keep
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out

    def flush(self) -> str:
        """The held text at the end of generation (incomplete bytes become U+FFFD)."""
        if self.stopped:
            return ""
        out = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return out

    def _partial_stop_suffix(self) -> int:
        """Length of the longest end of the pending text that begins some stop string."""
        text = self._pending
        for n in range(min(len(text), self._hold - 1), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0
