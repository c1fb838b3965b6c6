"""Streaming responses (SSE for OpenAI routes, NDJSON for Ollama routes) that stop the job when the client goes.

Starlette's own ``StreamingResponse`` relies on the server version to notice a disconnect; this one always listens
for ``http.disconnect`` next to the stream and cancels the stream (and so the engine job) at once.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, AsyncIterable, Callable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class CancellableStreamingResponse(StreamingResponse):
    """A streaming response that calls ``on_close`` when it ends for any reason (done, error, disconnect)."""

    def __init__(self, content: AsyncIterable[str], *, on_close: Callable[[], None], media_type: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                async def run_and_cancel(func: Callable[[], Any]) -> None:
                    try:
                        await func()
                    except OSError:  # the connection broke while sending
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(run_and_cancel, partial(self.stream_response, send))
                await run_and_cancel(partial(self.listen_for_disconnect, receive))
        finally:
            self._on_close()


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event carrying ``data`` (JSON unless a plain string such as ``[DONE]``)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n"


def sse_event(name: str, data: dict[str, Any]) -> str:
    """One named server-sent event (Anthropic's and the Responses API's streams name every event)."""
    return f"event: {name}\n" + sse(data)


def ndjson(data: dict[str, Any]) -> str:
    """One line of newline-delimited JSON."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
