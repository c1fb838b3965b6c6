"""What every API shape shares about tool calls and logprobs: the request's tools as an engine
:class:`~inference.tools.ToolRequest`, and a job's streamed text split into content and call events."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, AsyncIterator, Sequence

from app.api.errors import ApiError
from inference.grammar import GrammarError, SchemaError
from inference.logprobs import TokenLogprob
from inference.tools import (ArgumentsPart, CallEnd, CallStart, TextPart, ToolCall, ToolReply, ToolRequest,
                             ToolStream, argument_error, call_grammar, tool_request)


def engine_tools(tools: Sequence[Any] | None, choice: str | None = None, parallel: bool | None = None, *,
                 param: str = "tools", schema_at: str = "tools[{index}].function.parameters") -> ToolRequest | None:
    """The engine's tool request for a request's function definitions (objects with ``name``, ``description``
    and ``parameters``; None or empty: no tools) and its tool choice (``auto``, ``none``, ``required`` or a
    function's name); ``schema_at`` names a tool's parameter schema in the request's shape for messages.

    Raises:
        ApiError: 400 for an unusable definition (a schema that is not valid JSON Schema included) or a choice
            that names no given tool.
    """
    if not tools:
        if choice in ("required",) or (choice and choice not in ("auto", "none")):
            raise ApiError(400, "tool_choice asks for a tool call but no tools are given.", param="tool_choice")
        return None
    defs = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]
    try:
        request = tool_request(defs, choice or "auto", True if parallel is None else parallel, schema_at=schema_at)
        if request.choice != "none":
            call_grammar(request)  # a schema the grammar cannot follow is the request's error, found now
    except GrammarError as exc:  # ToolError and SchemaError among them
        where = "tool_choice" if not isinstance(exc, SchemaError) and "tool_choice" in str(exc) else param
        raise grammar_error(exc, param=where) from None
    return request


def grammar_error(exc: GrammarError, *, param: str) -> ApiError:
    """The 400 for a schema or grammar the request gives that cannot be used (``invalid_schema`` when it is not
    valid JSON Schema), naming ``param``; every API shape answers it in its own error format."""
    return ApiError(400, str(exc), param=param, code="invalid_schema" if isinstance(exc, SchemaError) else None)


def parse_arguments(text: str, *, param: str) -> dict[str, Any]:
    """An earlier call's arguments (JSON text) as an object.

    Raises:
        ApiError: 400 when they are not a JSON object.
    """
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        raise ApiError(400, "A tool call's arguments must be a JSON object.", param=param) from None
    if not isinstance(value, dict):
        raise ApiError(400, "A tool call's arguments must be a JSON object.", param=param)
    return value


def checked_call(call: ToolCall, tools: ToolRequest | None) -> ToolCall:
    """``call``, marked incomplete with its ``error`` when its arguments do not match the tool's schema (which
    only a schema the grammar could not follow whole lets happen, see ``inference.tools.grammar_schema``)."""
    if tools is None or not call.complete:
        return call
    error = argument_error(tools, call)
    return call if error is None else dataclasses.replace(call, complete=False, error=error)


def checked_reply(reply: ToolReply | None, tools: ToolRequest | None) -> ToolReply | None:
    """``reply`` with each call checked (:func:`checked_call`)."""
    if reply is None or not reply.calls:
        return reply
    return dataclasses.replace(reply, calls=tuple(checked_call(c, tools) for c in reply.calls))


def invalid_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """The calls whose arguments do not match their schema, for the ``ember`` field of a reply
    (``invalid_calls``: their place among the reply's calls, name and the reason)."""
    return [{"index": i, "name": c.name, "error": c.error} for i, c in enumerate(calls) if c.error]


async def split_calls(items: AsyncIterator[tuple[str, Any]], tools: ToolRequest | bool | None
                      ) -> AsyncIterator[tuple[str, Any]]:
    """``generation_events`` items with the text split into ``("text", str)``, ``("call", CallStart)``,
    ``("args", ArgumentsPart)`` and ``("call_end", CallEnd)`` when the request has ``tools`` (a request's:
    each finished call is checked against its schema, :func:`checked_call`)."""
    stream = ToolStream()
    enabled = tools is not None and tools is not False
    request = tools if isinstance(tools, ToolRequest) else None

    def mapped(events: list) -> list[tuple[str, Any]]:
        out = []
        for ev in events:
            if isinstance(ev, TextPart):
                out.append(("text", ev.text))
            elif isinstance(ev, CallStart):
                out.append(("call", ev))
            elif isinstance(ev, ArgumentsPart):
                out.append(("args", ev))
            elif isinstance(ev, CallEnd):
                out.append(("call_end", CallEnd(ev.index, checked_call(ev.call, request))))
        return out

    async for kind, value in items:
        if enabled and kind == "text":
            for item in mapped(stream.push(value)):
                yield item
        elif enabled and kind == "end":
            for item in mapped(stream.finish()):
                yield item
            yield kind, value
        else:
            yield kind, value


def logprob_entry(lp: TokenLogprob) -> dict[str, Any]:
    """One token of OpenAI's ``logprobs.content``."""
    return {"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.bytes),
            "top_logprobs": [{"token": a.token, "logprob": a.logprob, "bytes": list(a.bytes)} for a in lp.top]}
