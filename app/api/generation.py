"""Running one generation job for a request: waiting for its output, turning failures into API errors."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import Response

from app.api.errors import ApiError, error_body, from_known, internal_error
from app.api.jobs import ApiJob, ClientGone, Scheduler, cancel_on_disconnect
from app.api.streaming import CancellableStreamingResponse
from app.services.route_explain import route_header
from inference.events import EngineEvent, Failed, Finished, GenerationStats, TokenText
from inference.logprobs import TokenLogprob
from storage.errors import EmberError


def request_id(prefix: str) -> str:
    """A unique id such as ``chatcmpl-3f2a...``."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def failure(event: Failed) -> ApiError:
    """The API error for a failed job (a bug was already logged with its traceback by the engine)."""
    if isinstance(event.error, EmberError):
        return from_known(event.error)
    return internal_error(event.error, already_logged=True)


@dataclass
class Outcome:
    """A finished job: its result and stats (and the tokens' log-probabilities when the job was asked for them)."""

    result: Any
    stats: GenerationStats | None
    logprobs: list[TokenLogprob] = field(default_factory=list)


async def run_to_end(request: Request, job: ApiJob, scheduler: Scheduler) -> Outcome:
    """Wait for ``job`` to finish, cancelling it if the client disconnects; the job leaves ``scheduler``'s queue
    however it ends.

    Raises:
        ApiError: the job failed (known error), timed out (504) or the client left (499).
    """
    logprobs: list[TokenLogprob] = []
    try:
        async with cancel_on_disconnect(request, job):
            try:
                async for event in job.stream():
                    if isinstance(event, Failed):
                        raise failure(event)
                    if isinstance(event, TokenLogprob):
                        logprobs.append(event)
                    if isinstance(event, Finished):
                        return Outcome(event.result, event.stats, logprobs)
            except ClientGone as exc:
                raise ApiError(499, "The client closed the connection.", code="client_closed") from exc
        raise AssertionError("job stream ended without a final event")
    finally:
        scheduler.release(job)


async def first_output(request: Request, job: ApiJob) -> list[EngineEvent]:
    """Wait until ``job`` produces text or ends, so a stream starts with the right status code.

    Returns the events so far (the last one is :class:`TokenText` or :class:`Finished`).

    Raises:
        ApiError: as :func:`run_to_end`.
    """
    events: list[EngineEvent] = []
    async with cancel_on_disconnect(request, job):
        try:
            async for event in job.stream():
                if isinstance(event, Failed):
                    raise failure(event)
                events.append(event)
                if isinstance(event, (TokenText, Finished)):
                    return events
        except ClientGone as exc:
            raise ApiError(499, "The client closed the connection.", code="client_closed") from exc
    raise AssertionError("job stream ended without a final event")


def ember_extras(job: ApiJob, stats: GenerationStats | None) -> dict[str, Any]:
    """Ember's own figures for a response body (the ``ember`` field)."""
    out: dict[str, Any] = {"model": job.model, "request_id": job.handle.id, "queue_ms": job.queue_ms}
    if stats is not None:
        out["stats"] = stats.as_dict()
    return out


# Every X-Ember-* response header, in one place (the CORS middleware exposes exactly these to web pages).
JOB_HEADERS = ("X-Ember-Model", "X-Ember-Request-Id", "X-Ember-Queue-Ms")
STATS_HEADERS = ("X-Ember-Prompt-Tokens", "X-Ember-Cached-Tokens", "X-Ember-Completion-Tokens", "X-Ember-TTFT-Ms",
                 "X-Ember-Tokens-Per-Second", "X-Ember-Finish-Reason")
ROUTE_HEADER = "X-Ember-Route"
IGNORED_HEADER = "X-Ember-Ignored"  # the request's fields that Ember accepted but did not act on
EMBER_HEADERS = (*JOB_HEADERS, *STATS_HEADERS, ROUTE_HEADER, IGNORED_HEADER)


_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.$-]{1,64}$")
_MAX_NAMED = 16


def ignored_headers(names: list[str]) -> dict[str, str]:
    """``X-Ember-Ignored: a, b`` naming the request's fields that Ember accepts but ignores (none: no header), so
    that a client sees what did not change the reply; names a header cannot carry, and any beyond the first 16,
    are counted (``..., 3 more``)."""
    shown = [n for n in names if _FIELD_NAME.match(n)][:_MAX_NAMED]
    rest = len(names) - len(shown)
    parts = shown + ([f"{rest} more"] if rest else [])
    return {IGNORED_HEADER: ", ".join(parts)} if parts else {}


def ember_headers(job: ApiJob, stats: GenerationStats | None = None) -> dict[str, str]:
    """``X-Ember-*`` headers (stats only when the job has finished before the headers go out, so never on a
    stream: a stream reports them, and the router's tier, in its final chunk's ``ember.stats``)."""
    headers = dict(zip(JOB_HEADERS, (job.model, str(job.handle.id), f"{job.queue_ms:.1f}"), strict=True))
    if stats is not None:
        headers.update(zip(STATS_HEADERS, (
            str(stats.prompt_tokens), str(stats.cached_tokens), str(stats.completion_tokens), f"{stats.ttft_ms:.1f}",
            f"{stats.tokens_per_s:.1f}", stats.finish_reason), strict=True))
        if stats.router:  # which tier answered and why (app/routing.py)
            headers[ROUTE_HEADER] = route_header(stats.router)
    return headers


def usage(stats: GenerationStats | None) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    p = stats.prompt_tokens if stats else 0
    c = stats.completion_tokens if stats else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def finish_reason(stats: GenerationStats | None) -> str:
    """OpenAI's finish reason (``stop`` or ``length``): a reply cut as a loop (``repetition``) is ``stop`` there;
    ``X-Ember-Finish-Reason`` and ``ember.stats`` keep Ember's own reason."""
    return "length" if stats is not None and stats.finish_reason == "length" else "stop"


async def generation_events(job: ApiJob, first: list[EngineEvent], *, ollama: bool = False
                            ) -> AsyncIterator[tuple[str, Any]]:
    """A job's output as ``("text", str)`` items (and ``("logprob", TokenLogprob)`` before a token's text when the
    job was asked for them), then ``("end", stats)`` or ``("error", error body)``."""
    pending = list(first)
    while True:
        if pending:
            event = pending.pop(0)
        else:
            try:
                event = await job.next_event()
            except ApiError as err:
                yield "error", error_body(err, ollama=ollama)
                return
            except ClientGone:
                return
        if isinstance(event, TokenText):
            yield "text", event.text
        elif isinstance(event, TokenLogprob):
            yield "logprob", event
        elif isinstance(event, Finished):
            yield "end", event.stats
            return
        elif isinstance(event, Failed):
            yield "error", error_body(failure(event), ollama=ollama)
            return


Render = Callable[[AsyncIterator[tuple[str, Any]]], AsyncIterator[str]]


async def start_stream(request: Request, job: ApiJob, scheduler: Scheduler, render: Render, *,
                       media_type: str, ollama: bool = False, headers: dict[str, str] | None = None) -> Response:
    """Wait for the job's first output (so early failures keep their status code), then stream the rest.

    The job is released from the queue when the stream ends, whatever the reason; ``headers`` go out with the
    job's own.
    """
    try:
        first = await first_output(request, job)
    except BaseException:
        scheduler.release(job)
        raise
    return CancellableStreamingResponse(render(generation_events(job, first, ollama=ollama)),
                                        on_close=lambda: scheduler.release(job), media_type=media_type,
                                        headers={**ember_headers(job), **(headers or {})})
