"""A remote large tier: an OpenAI-compatible server (vLLM, llama.cpp's server, another Ember) over HTTP.

Replies stream with server-sent events. Connection failures, 5xx and 429 answers are retried (with a short backoff)
as long as no text has arrived; every failure ends as a :class:`RemoteTierError` whose message says what went wrong,
so the caller can keep the small model's answer. Timeouts bound every wait: connecting, each read, and the whole
reply, so a slow or silent server never hangs the chat.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import httpx

from inference.engine import ChatResult
from inference.events import reply_stats
from inference.sampling import SamplingOptions
from storage.errors import EmberError


class RemoteTierError(EmberError, ConnectionError):
    """The remote large tier could not be reached, timed out or answered something unusable."""


@dataclass(frozen=True)
class RemoteEndpoint:
    """Where the remote tier is and how long to wait for it."""

    base_url: str  # e.g. http://host:8000/v1 (a bare http://host:8000 gets /v1 added)
    model: str | None = None  # None: the server's first model
    api_key: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    total_timeout: float = 300.0
    retries: int = 2

    @property
    def api_base(self) -> str:
        """The base URL ending in ``/v1``."""
        url = self.base_url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"


def _client(ep: RemoteEndpoint) -> httpx.Client:
    headers = {"Authorization": f"Bearer {ep.api_key}"} if ep.api_key else {}
    timeout = httpx.Timeout(ep.read_timeout, connect=ep.connect_timeout)
    return httpx.Client(base_url=ep.api_base, headers=headers, timeout=timeout, trust_env=False)


def _where(ep: RemoteEndpoint) -> str:
    return f"the large tier at {ep.api_base}"


def remote_models(ep: RemoteEndpoint) -> list[str]:
    """The model ids the server lists (``GET /v1/models``).

    Raises:
        RemoteTierError: unreachable, refused or not an OpenAI-compatible answer.
    """
    try:
        with _client(ep) as client:
            r = client.get("/models")
    except httpx.HTTPError as exc:
        raise RemoteTierError(f"Could not reach {_where(ep)} ({_describe(exc)}).") from exc
    _check_status(ep, r)
    try:
        return [str(m["id"]) for m in r.json()["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise RemoteTierError(f"{_where(ep).capitalize()} did not answer GET /models like an OpenAI-compatible "
                              "server.") from exc


def remote_chat(ep: RemoteEndpoint, messages: Sequence[Mapping[str, str]], options: SamplingOptions, *,
                on_text: Callable[[str], None], should_stop: Callable[[], bool] = lambda: False) -> ChatResult:
    """Stream a chat completion from the remote server, passing text to ``on_text`` as it arrives.

    Raises:
        RemoteTierError: unreachable after the retries, an error status, a timeout, or a malformed reply.
    """
    model = ep.model or _first_model(ep)
    body: dict[str, Any] = {"model": model, "messages": [{"role": m["role"], "content": m["content"]}
                                                         for m in messages],
                            "stream": True, "temperature": options.temperature, "top_p": options.top_p,
                            "max_tokens": options.max_tokens, "stream_options": {"include_usage": True}}
    if options.stop:
        body["stop"] = list(options.stop)
    if options.seed is not None:
        body["seed"] = options.seed
    t0 = time.perf_counter()
    deadline = time.monotonic() + ep.total_timeout
    attempt = 0
    parts: list[str] = []

    def emit(text: str) -> None:
        parts.append(text)
        on_text(text)

    while True:
        got_text = [False]
        try:
            result = _stream_once(ep, body, emit, should_stop, t0, deadline, got_text)
            return ChatResult("".join(parts), result.stats)
        except _Retryable as exc:
            if got_text[0] or attempt >= ep.retries or time.monotonic() >= deadline:
                raise RemoteTierError(f"{_where(ep).capitalize()} failed: {exc} "
                                      f"(after {attempt + 1} attempt{'s' if attempt else ''}).") from None
            time.sleep(min(0.25 * 2 ** attempt, 2.0))
            attempt += 1


class _Retryable(Exception):
    """A failure worth another attempt (connection refused or reset, 5xx, 429)."""


def _stream_once(ep: RemoteEndpoint, body: dict[str, Any], on_text: Callable[[str], None],
                 should_stop: Callable[[], bool], t0: float, deadline: float, got_text: list[bool]) -> ChatResult:
    n_chunks = 0
    finish = "stop"
    usage: dict[str, Any] = {}
    t_first = t_last = None
    try:
        with _client(ep) as client, client.stream("POST", "/chat/completions", json=body) as r:
            if r.status_code >= 500 or r.status_code == 429:
                r.read()
                raise _Retryable(f"HTTP {r.status_code}: {_error_text(r)}")
            if r.status_code >= 400:
                r.read()
                raise RemoteTierError(f"{_where(ep).capitalize()} refused the request: HTTP {r.status_code} "
                                      f"{_error_text(r)}" + (" Check the API key in the keyring."
                                                             if r.status_code in (401, 403) else ""))
            if not r.headers.get("content-type", "").startswith("text/event-stream"):
                r.read()
                return _whole_reply(ep, r, on_text, t0)
            for line in r.iter_lines():
                if time.monotonic() > deadline:
                    raise RemoteTierError(f"{_where(ep).capitalize()} took longer than {ep.total_timeout:g} s "
                                          "for the whole reply.")
                if should_stop():
                    finish = "cancelled"
                    break
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except json.JSONDecodeError:
                    raise _garbage(ep, f"a stream line is not JSON: {data[:80]!r}") from None
                if not isinstance(chunk, dict):
                    raise _garbage(ep, "a stream chunk is not an object")
                if "error" in chunk and not chunk.get("choices"):
                    err = chunk["error"]
                    msg = err.get("message") if isinstance(err, dict) else err
                    raise RemoteTierError(f"{_where(ep).capitalize()} failed mid-reply: {msg}")
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                choices = chunk.get("choices")
                if choices is None:
                    raise _garbage(ep, "a stream chunk has no 'choices'")
                for choice in choices:
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if not isinstance(delta, dict):
                        raise _garbage(ep, "a stream choice has no 'delta'")
                    text = delta.get("content")
                    if text:
                        now = time.perf_counter()
                        t_first = t_first or now
                        t_last = now
                        n_chunks += 1
                        got_text[0] = True
                        on_text(str(text))
                    if choice.get("finish_reason") == "length":
                        finish = "length"
            else:
                if not got_text[0] and not usage:
                    raise _garbage(ep, "the stream ended without a reply")
    except httpx.TimeoutException as exc:
        raise RemoteTierError(f"{_where(ep).capitalize()} did not answer in time ({_describe(exc)}; connect "
                              f"timeout {ep.connect_timeout:g} s, read timeout {ep.read_timeout:g} s).") from exc
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        if got_text[0]:
            raise RemoteTierError(f"{_where(ep).capitalize()} dropped the connection mid-reply "
                                  f"({_describe(exc)}).") from exc
        raise _Retryable(f"cannot connect ({_describe(exc)})") from exc
    except httpx.HTTPError as exc:
        raise RemoteTierError(f"{_where(ep).capitalize()} failed ({_describe(exc)}).") from exc
    completion = int(usage.get("completion_tokens") or n_chunks)
    stats = reply_stats(prompt_tokens=int(usage.get("prompt_tokens") or 0), cached_tokens=0,
                        completion_tokens=completion, decoded=max(completion - 1, 0), started=t0, prompt_ms=0.0,
                        first=t_first, last=t_last, end=time.perf_counter(), finish_reason=finish)
    return ChatResult("", stats)


def _whole_reply(ep: RemoteEndpoint, r: httpx.Response, on_text: Callable[[str], None], t0: float) -> ChatResult:
    """A server that ignored ``stream: true`` and sent one JSON reply."""
    try:
        payload = r.json()
        text = payload["choices"][0]["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("content is not text")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise _garbage(ep, f"the reply is not a chat completion ({type(exc).__name__})") from None
    on_text(text)
    u = payload.get("usage") or {}
    stats = reply_stats(prompt_tokens=int(u.get("prompt_tokens") or 0), cached_tokens=0,
                        completion_tokens=int(u.get("completion_tokens") or 0), decoded=0, started=t0, prompt_ms=0.0,
                        first=None, last=None, end=time.perf_counter(),
                        finish_reason="length" if payload["choices"][0].get("finish_reason") == "length" else "stop")
    return ChatResult("", stats)


def _first_model(ep: RemoteEndpoint) -> str:
    models = remote_models(ep)
    if not models:
        raise RemoteTierError(f"{_where(ep).capitalize()} lists no models; set the remote model name.")
    return models[0]


def _check_status(ep: RemoteEndpoint, r: httpx.Response) -> None:
    if r.status_code >= 400:
        raise RemoteTierError(f"{_where(ep).capitalize()} answered HTTP {r.status_code}: {_error_text(r)}"
                              + (" Check the API key in the keyring." if r.status_code in (401, 403) else ""))


def _garbage(ep: RemoteEndpoint, what: str) -> RemoteTierError:
    return RemoteTierError(f"{_where(ep).capitalize()} answered something that is not an OpenAI-compatible "
                           f"reply: {what}.")


def _error_text(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    except (ValueError, AttributeError):
        pass
    return (r.text or r.reason_phrase or "")[:200]


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
