"""Anthropic-compatible route: ``POST /v1/messages`` (what Claude-style tools use with a base URL).

``system``, text content blocks, ``max_tokens``, ``stop_sequences``, ``temperature``/``top_p``/``top_k``, tools with
``tool_use`` / ``tool_result`` blocks and streaming with Anthropic's event sequence. The token may come as
``x-api-key`` (the security middleware accepts it); errors are Anthropic-shaped (``app/api/errors.py``).
"""

from __future__ import annotations

import uuid
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.api import openapi
from app.api.context import ApiContext
from app.api.errors import ApiError
from app.api.generation import ember_extras, ember_headers, ignored_headers, run_to_end, start_stream
from app.api.schemas import AnthropicBlock, AnthropicMessage, CountTokensRequest, MessagesRequest
from app.api.streaming import sse_event
from app.api.tool_calls import checked_reply, engine_tools, invalid_calls, split_calls
from inference.events import GenerationStats

router = APIRouter(prefix="/v1", tags=["anthropic"])


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def _block_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text or "" for p in content if p.type == "text")


def _messages(body: MessagesRequest) -> list[dict[str, Any]]:
    """The conversation for the engine: one system message first, made of ``system`` and then every ``system``
    message of ``messages`` in order (as Claude Code sends reminders), then the user and assistant turns."""
    systems: list[str] = []
    if body.system:
        systems.append(body.system if isinstance(body.system, str) else _texts(body.system, "system"))
    out: list[dict[str, Any]] = []
    for i, m in enumerate(body.messages):
        if m.role == "system":
            text = m.content if isinstance(m.content, str) else _texts(m.content, f"messages.{i}.content")
            if text:
                systems.append(text)
            continue
        out += _message(m, f"messages.{i}.content")
    if not out:
        raise ApiError(400, "'messages' needs a user or assistant message besides system messages.",
                       param="messages")
    return ([{"role": "system", "content": "\n\n".join(systems)}] if systems else []) + out


def _texts(blocks: list[AnthropicBlock], param: str) -> str:
    for b in blocks:
        if b.type != "text":
            raise ApiError(400, f"Only text blocks are supported here (got a {b.type!r} block).", param=param)
    return "".join(b.text or "" for b in blocks)


def _message(m: AnthropicMessage, param: str) -> list[dict[str, Any]]:
    if isinstance(m.content, str):
        return [{"role": m.role, "content": m.content}]
    texts, calls, results = [], [], []
    for b in m.content:
        if b.type == "text":
            texts.append(b.text or "")
        elif b.type == "tool_use" and m.role == "assistant":
            if not b.name:
                raise ApiError(400, "A tool_use block needs a 'name'.", param=param)
            calls.append({"id": b.id or "", "name": b.name, "arguments": b.input or {}})
        elif b.type == "tool_result" and m.role == "user":
            text = _block_text(b.content)
            results.append({"role": "tool", "content": f"Error: {text}" if b.is_error else text,
                            "tool_call_id": b.tool_use_id or ""})
        elif b.type in ("thinking", "redacted_thinking"):
            continue
        else:
            raise ApiError(400, f"Content blocks of type {b.type!r} are not supported by Ember"
                           f"{' in ' + m.role + ' messages' if b.type in ('tool_use', 'tool_result') else ''}.",
                           param=param)
    out = results
    if texts or calls or not results:
        msg: dict[str, Any] = {"role": m.role, "content": "".join(texts)}
        if calls:
            msg["tool_calls"] = calls
        out = out + [msg]
    return out


def _tools(body: MessagesRequest) -> Any:
    for i, t in enumerate(body.tools or []):
        if t.type not in (None, "custom"):
            raise ApiError(400, f"Server tools ({t.type!r}) are not supported by Ember: give custom tools with "
                                "an input_schema.", param=f"tools.{i}")
    choice = body.tool_choice
    name = None
    if choice is not None:
        name = {"auto": "auto", "any": "required", "none": "none"}.get(choice.type) or choice.name
        if choice.type == "tool" and not choice.name:
            raise ApiError(400, "tool_choice of type 'tool' needs a 'name'.", param="tool_choice")
    parallel = not (choice and choice.disable_parallel_tool_use)

    class _Def:
        def __init__(self, t: Any) -> None:
            self.name, self.description, self.parameters = t.name, t.description, t.input_schema

    return engine_tools([_Def(t) for t in body.tools or []], name, parallel,
                        schema_at="tools[{index}].input_schema")


def _stop_reason(stats: GenerationStats | None, called: bool) -> str:
    if stats is not None and stats.finish_reason == "length":
        return "max_tokens"
    return "tool_use" if called else "end_turn"


def _usage(stats: GenerationStats | None) -> dict[str, int]:
    return {"input_tokens": stats.prompt_tokens if stats else 0,
            "output_tokens": stats.completion_tokens if stats else 0,
            "cache_read_input_tokens": stats.cached_tokens if stats else 0}


def _tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


@router.post("/messages/count_tokens", summary="Count a Messages request's input tokens (Anthropic shape)",
             responses=openapi.responses("anthropic", openapi.GENERATION))
async def count_tokens(body: CountTokensRequest, request: Request) -> Response:
    """The prompt the request would give the model, counted by building it on the engine as a reply would (the
    model's chat template, the tools): a one-token reply whose prompt tokens are the count. The prompt stays in
    the KV cache, so the request that follows with the same prefix starts from it."""
    ctx = _ctx(request)
    msgs = _messages(body)
    tools = _tools(body)
    options = ctx.sampling(temperature=0.0, max_tokens=1)
    model, spec = ctx.spec(body.model)
    job = ctx.scheduler.submit(  # on the request's model itself, never routed: its tokenizer counts
        lambda cb: ctx.core.engine.chat(msgs, options, model=spec, on_event=cb, tools=tools),
        model=model.name, kind="chat")
    out = await run_to_end(request, job, ctx.scheduler)
    tokens = out.stats.prompt_tokens if out.stats else 0
    return JSONResponse({"input_tokens": tokens},
                        headers={**ember_headers(job), **ignored_headers(body.ignored())})


@router.post("/messages", summary="Messages (Anthropic shape; SSE events when stream is true)",
             responses=openapi.responses("anthropic", openapi.GENERATION, stream=True))
async def messages(body: MessagesRequest, request: Request) -> Response:
    ctx = _ctx(request)
    msgs = _messages(body)
    tools = _tools(body)
    ignored = ignored_headers(body.ignored())
    options = ctx.sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
                           stop=list(body.stop_sequences or []) or None, max_tokens=body.max_tokens)
    model, spec = ctx.spec(body.model)
    job = ctx.submit_chat(msgs, options, model, spec, routing=body.ember, tools=tools)
    mid = "msg_" + uuid.uuid4().hex[:24]
    base = {"id": mid, "type": "message", "role": "assistant", "model": model.name}
    if not body.stream:
        out = await run_to_end(request, job, ctx.scheduler)
        reply = checked_reply(out.result.tools, tools)
        text = out.result.text if reply is None else reply.content
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        calls = reply.calls if reply is not None else ()
        content += [{"type": "tool_use", "id": _tool_id(), "name": c.name, "input": c.parsed_arguments()}
                    for c in calls]
        return JSONResponse({**base, "content": content, "stop_reason": _stop_reason(out.stats, bool(calls)),
                             "stop_sequence": None, "usage": _usage(out.stats),
                             "ember": _extras(job, out.stats, calls)},
                            headers={**ember_headers(job, out.stats), **ignored})

    async def render(items: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[str]:
        yield sse_event("message_start", {"type": "message_start", "message": {
            **base, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})
        index = -1
        open_block: str | None = None
        called = False
        calls: list[Any] = []

        def stop_block() -> str:
            nonlocal open_block
            open_block = None
            return sse_event("content_block_stop", {"type": "content_block_stop", "index": index})

        async for kind, value in split_calls(items, tools):
            if kind == "text":
                if open_block != "text":
                    if open_block:
                        yield stop_block()
                    index += 1
                    open_block = "text"
                    yield sse_event("content_block_start", {"type": "content_block_start", "index": index,
                                                            "content_block": {"type": "text", "text": ""}})
                yield sse_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "text_delta", "text": value}})
            elif kind == "call":
                called = True
                if open_block:
                    yield stop_block()
                index += 1
                open_block = "tool_use"
                yield sse_event("content_block_start", {"type": "content_block_start", "index": index,
                                                        "content_block": {"type": "tool_use", "id": _tool_id(),
                                                                          "name": value.name, "input": {}}})
            elif kind == "args":
                yield sse_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "input_json_delta",
                                                                  "partial_json": value.text}})
            elif kind == "call_end":
                calls.append(value.call)
                if open_block:
                    yield stop_block()
            elif kind == "end":
                if open_block:
                    yield stop_block()
                yield sse_event("message_delta", {"type": "message_delta",
                                                  "delta": {"stop_reason": _stop_reason(value, called),
                                                            "stop_sequence": None},
                                                  "usage": _usage(value), "ember": _extras(job, value, calls)})
                yield sse_event("message_stop", {"type": "message_stop"})
            elif kind == "error":
                err = value.get("error", {})  # OpenAI-shaped (generation_events)
                kind = {"timeout": "timeout_error", "invalid_request_error": "invalid_request_error"}.get(
                    err.get("type"), "api_error")
                yield sse_event("error", {"type": "error", "error": {"type": kind,
                                                                     "message": err.get("message", "error")}})

    return await start_stream(request, job, ctx.scheduler, render, media_type="text/event-stream", headers=ignored)


def _extras(job: Any, stats: GenerationStats | None, calls: Any) -> dict[str, Any]:
    """The ``ember`` field, with the calls whose arguments do not match their tool's schema (the tool_use block
    stays: an agent answers it with an ``is_error`` tool_result, as for any input it refuses)."""
    extras = ember_extras(job, stats)
    if invalid := invalid_calls(calls):
        extras["invalid_calls"] = invalid
    return extras
