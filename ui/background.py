"""Run blocking work (disk, waiting on engine jobs) off the GUI thread; results come back as queued signals."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal

from storage.errors import user_message


Done = Callable[[Any], None]
Error = Callable[[str], None]


class Background(QObject):
    """A small thread pool whose callbacks run on the GUI thread.

    Known errors (``EmberError``) reach ``on_error`` as their message; anything else is a bug: it is logged with
    its traceback and ``on_error`` gets a short notice pointing at the log.
    """

    _finished = Signal(int, bool, object)

    def __init__(self, parent: QObject | None = None, *, workers: int = 2) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ember-ui")
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Done | None, Error | None]] = {}
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def run(self, fn: Callable[[], Any], on_done: Done | None = None, on_error: Error | None = None) -> int:
        """Call ``fn()`` on a worker thread; then ``on_done(result)`` or ``on_error(message)`` on this thread."""
        job = next(self._ids)
        self._pending[job] = (on_done, on_error)
        self._pool.submit(self._call, job, fn)
        return job

    def shutdown(self) -> None:
        """Wait for running jobs and stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _call(self, job: int, fn: Callable[[], Any]) -> None:
        try:
            self._finished.emit(job, True, fn())
        except Exception as exc:  # a known error's message; a bug's apology, its traceback in the log
            self._finished.emit(job, False, user_message(exc, doing="a background job"))

    def _deliver(self, job: int, ok: bool, value: Any) -> None:
        on_done, on_error = self._pending.pop(job, (None, None))
        if ok and on_done is not None:
            on_done(value)
        elif not ok and on_error is not None:
            on_error(value)
