"""Scheduling API requests on the shared engine: a bounded queue, deadlines, and cancel-on-disconnect.

Every request becomes one engine job. The engine starts jobs in submission order and generates up to
``api.parallel`` replies at once, batched into one decode per step (:mod:`inference.scheduler`); the chat window's
turns go first and always find a slot. Engine events cross from the worker thread into the server's event loop
through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from starlette.requests import Request

from app.api.errors import ApiError
from app.settings import ApiSettings
from inference.engine import EngineService, JobHandle
from inference.errors import EngineError
from inference.events import EngineEvent, Failed, Finished

StartJob = Callable[[Callable[[EngineEvent], None]], JobHandle]


class ClientGone(Exception):
    """The client closed the connection; its job was cancelled."""


@dataclass
class ApiJob:
    """One request's engine job, its event queue and its deadline."""

    handle: JobHandle
    model: str
    kind: str
    deadline: float
    timeout: float
    events: asyncio.Queue = field(repr=False)
    submitted: float = field(default_factory=time.perf_counter)

    def cancel(self) -> None:
        """Stop the job (at the next token, or before it starts)."""
        self.handle.cancel()

    @property
    def queue_ms(self) -> float:
        """Time the job waited for the engine (so far, if still waiting)."""
        start = self.handle.started or time.perf_counter()
        return round((start - self.handle.submitted) * 1000, 2)

    async def next_event(self) -> EngineEvent:
        """The next engine event.

        Raises:
            ApiError: 504 when the request's deadline passes (the job is cancelled).
            ClientGone: the client disconnected.
        """
        remaining = self.deadline - time.monotonic()
        try:
            event = await asyncio.wait_for(self.events.get(), timeout=max(remaining, 0.0))
        except asyncio.TimeoutError:
            self.cancel()
            raise ApiError(504, f"The request took longer than the API's {self.timeout:g} s timeout and was "
                                "cancelled. Ask for fewer tokens or raise the timeout in settings.",
                           code="timeout") from None
        if isinstance(event, ClientGone):
            raise event
        return event

    async def stream(self) -> AsyncIterator[EngineEvent]:
        """Events up to and including the final :class:`Finished` or :class:`Failed`."""
        while True:
            event = await self.next_event()
            yield event
            if isinstance(event, (Finished, Failed)):
                return

    def client_gone(self) -> None:
        """Called from the event loop when the client disconnects: cancel and wake the waiting coroutine."""
        self.cancel()
        self.events.put_nowait(ClientGone("client disconnected"))


class Scheduler:
    """Admits API requests up to ``max_queue`` and tracks them for ``/health``.

    Args:
        engine: the shared engine.
        settings: returns the API settings in force (read on every request, so saved limits apply at once).
    """

    def __init__(self, engine: EngineService, settings: Callable[[], ApiSettings]) -> None:
        self.engine = engine
        self._settings = settings
        self._jobs: dict[int, ApiJob] = {}
        self._lock = threading.Lock()
        self.last_activity = time.monotonic()

    @property
    def settings(self) -> ApiSettings:
        """The API settings in force now."""
        return self._settings()

    def submit(self, start: StartJob, *, model: str, kind: str) -> ApiJob:
        """Submit a job through ``start(on_event)``; must run on the server's event loop.

        Raises:
            ApiError: 503 when ``max_queue`` requests are already waiting or running, or when the engine takes no
                more jobs (it has been shut down).
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def on_event(event: EngineEvent) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
                loop.call_soon_threadsafe(events.put_nowait, event)

        settings = self.settings
        with self._lock:
            limit = settings.max_queue
            if len(self._jobs) >= limit:
                raise ApiError(503, f"Ember's API is busy: {len(self._jobs)} requests are already waiting or "
                                    f"running (the limit is {limit}). Try again shortly.",
                               code="queue_full", headers={"Retry-After": "1"})
            try:
                handle = start(on_event)
            except EngineError as exc:  # the engine refuses jobs only once it is shut down; job errors come later
                raise ApiError(503, str(exc), code="engine_stopped") from exc
            timeout = settings.request_timeout
            job = ApiJob(handle=handle, model=model, kind=kind, deadline=time.monotonic() + timeout,
                         timeout=timeout, events=events)
            self._jobs[handle.id] = job
            self.last_activity = time.monotonic()
        return job

    def release(self, job: ApiJob) -> None:
        """Forget a finished request (cancelling its job if it still runs)."""
        if not job.handle.done:
            job.cancel()
        with self._lock:
            self._jobs.pop(job.handle.id, None)
            self.last_activity = time.monotonic()

    @property
    def active(self) -> int:
        """API requests waiting or running."""
        with self._lock:
            return len(self._jobs)

    def cancel_all(self) -> None:
        """Cancel every API job (server shutdown)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()

    def snapshot(self) -> dict[str, Any]:
        """Queue state for ``/health``: each API request's position (0 = running) and wait so far."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.handle.id)
        rows = []
        waiting = 0
        for job in jobs:
            running = job.handle.started is not None and not job.handle.done
            if not running and not job.handle.done:
                waiting += 1
            rows.append({"id": job.handle.id, "kind": job.kind, "model": job.model,
                         "state": "running" if running else ("done" if job.handle.done else "waiting"),
                         "position": 0 if running else waiting, "queue_ms": job.queue_ms})
        return {"active": len(jobs), "waiting": waiting, "max_queue": self.settings.max_queue,
                "engine_pending": self.engine.pending, "requests": rows}


@contextlib.asynccontextmanager
async def cancel_on_disconnect(request: Request, job: ApiJob) -> AsyncIterator[None]:
    """While inside, a client disconnect cancels ``job`` at once (the request body must be read already)."""

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                job.client_gone()
                return

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
