"""OpenAI-compatible routes: ``/v1/models`` (also in Anthropic's shape), ``/v1/chat/completions`` (tools, logprobs),
``/v1/completions``, ``/v1/embeddings``."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.api import openapi
from app.api.context import ApiContext, stop_list
from app.api.errors import ApiError
from app.api.generation import (ember_extras, ember_headers, finish_reason, ignored_headers, request_id, run_to_end,
                                start_stream, usage)
from app.api.schemas import ChatCompletionRequest, ChatMessage, CompletionRequest, EmbeddingRequest, NamedToolChoice
from app.api.streaming import sse
from app.api.tool_calls import (checked_reply, engine_tools, grammar_error, invalid_calls, logprob_entry,
                                parse_arguments, split_calls)
from inference.grammar import GrammarError, json_grammar
from inference.tools import ToolRequest

router = APIRouter(prefix="/v1", tags=["openai"])


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


@router.get("/models", summary="List the library's models", responses=openapi.responses("openai"))
async def list_models(request: Request) -> dict[str, Any]:
    ctx = _ctx(request)
    data = [_model_entry(m.name, ctx.started) for m in ctx.core.library.list()]
    # OpenAI's list; has_more/first_id/last_id (and each entry's type/display_name/created_at) are Anthropic's
    return {"object": "list", "data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def _model_entry(name: str, started: float) -> dict[str, Any]:
    created = int(started)
    return {"id": name, "object": "model", "created": created, "owned_by": "ember", "type": "model",
            "display_name": name, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))}


@router.get("/models/{name:path}", summary="One model of the library",
            responses=openapi.responses("openai", (*openapi.GUARDED, 404)))
async def get_model(name: str, request: Request) -> dict[str, Any]:
    model = _ctx(request).model(name)
    return _model_entry(model.name, _ctx(request).started)


# -- chat -------------------------------------------------------------------------------------------------------


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call id -> function name, for the tool messages that answer them
    for i, m in enumerate(messages):
        if isinstance(m.content, list):
            texts = []
            for part in m.content:
                if part.type != "text" or part.text is None:
                    raise ApiError(400, f"Only text content is supported (got a {part.type!r} part).",
                                   param=f"messages.{i}.content")
                texts.append(part.text)
            content = "".join(texts)
        else:
            content = m.content or ""
        msg: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": content}
        if m.role == "assistant" and m.tool_calls:
            msg["tool_calls"] = [{"id": c.id, "name": c.function.name,
                                  "arguments": parse_arguments(c.function.arguments,
                                                               param=f"messages.{i}.tool_calls.{j}")}
                                 for j, c in enumerate(m.tool_calls)]
            names.update({c.id: c.function.name for c in m.tool_calls if c.id})
        if m.role == "tool":
            msg["tool_call_id"] = m.tool_call_id or ""
            msg["name"] = m.name or names.get(m.tool_call_id or "", "")
        out.append(msg)
    return out


def _tools(body: ChatCompletionRequest) -> ToolRequest | None:
    choice = body.tool_choice
    name = choice.function.name if isinstance(choice, NamedToolChoice) else choice
    tools = engine_tools([t.function for t in body.tools or []], name, body.parallel_tool_calls)
    if tools is not None and body.response_format is not None and body.response_format.type != "text":
        raise ApiError(400, "'response_format' and 'tools' cannot be combined.", param="response_format")
    return tools


def _logprobs(enabled: bool | None, top: int | None) -> int | None:
    if top is not None and not enabled:
        raise ApiError(400, "'top_logprobs' needs 'logprobs': true.", param="top_logprobs")
    return (top or 0) if enabled else None


def _message(reply: Any, content: str) -> dict[str, Any]:
    """The assistant message of a finished reply (with its tool calls, if any)."""
    if reply is None:
        return {"role": "assistant", "content": content}
    if not reply.calls:
        return {"role": "assistant", "content": reply.content}
    return {"role": "assistant", "content": reply.content or None,
            "tool_calls": [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                           for c in reply.calls]}


def _finish(stats: Any, called: bool) -> str:
    reason = finish_reason(stats)
    return "tool_calls" if called and reason == "stop" else reason


def _grammar(body: ChatCompletionRequest) -> str | None:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    try:
        if fmt.type == "json_object":
            return json_grammar()
        if fmt.json_schema is None or fmt.json_schema.schema_ is None:
            raise ApiError(400, "response_format json_schema needs a 'json_schema' with a 'schema'.",
                           param="response_format")
        return json_grammar(fmt.json_schema.schema_, where="response_format.json_schema.schema")
    except GrammarError as exc:
        raise grammar_error(exc, param="response_format") from None


def _check_common(n: int | None) -> None:
    if n not in (None, 1):
        raise ApiError(400, "Ember generates one choice per request: 'n' must be 1.", param="n")


@router.post("/chat/completions", summary="Chat completion (OpenAI shape; SSE when stream is true)",
             responses=openapi.responses("openai", openapi.GENERATION, stream=True))
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    ctx = _ctx(request)
    _check_common(body.n)
    messages = _messages(body.messages)
    grammar = _grammar(body)
    tools = _tools(body)
    logprobs = _logprobs(body.logprobs, body.top_logprobs)
    ignored = ignored_headers(body.ignored())
    options = ctx.sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, min_p=body.min_p,
                           repeat_penalty=body.repeat_penalty, dry_multiplier=body.dry_multiplier, seed=body.seed,
                           stop=stop_list(body.stop),
                           max_tokens=body.max_completion_tokens or body.max_tokens)
    model, spec = ctx.spec(body.model)
    job = ctx.submit_chat(messages, options, model, spec, grammar=grammar, routing=body.ember, tools=tools,
                          logprobs=logprobs)
    rid, created = request_id("chatcmpl"), int(time.time())
    if not body.stream:
        out = await run_to_end(request, job, ctx.scheduler)
        reply = checked_reply(out.result.tools, tools)
        message = _message(reply, out.result.text)
        lp = {"content": [logprob_entry(x) for x in out.logprobs]} if logprobs is not None else None
        payload = {
            "id": rid, "object": "chat.completion", "created": created, "model": model.name,
            "choices": [{"index": 0, "message": message,
                         "logprobs": lp, "finish_reason": _finish(out.stats, "tool_calls" in message)}],
            "usage": usage(out.stats), "system_fingerprint": "ember",
            "ember": _extras(job, out.stats, reply.calls if reply is not None else ()),
        }
        return JSONResponse(payload, headers={**ember_headers(job, out.stats), **ignored})

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    pending: list[dict[str, Any]] = []  # logprobs of tokens whose text has not gone out yet

    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        lp = None
        if logprobs is not None and (pending or reason is not None):
            lp = {"content": list(pending)}
            pending.clear()
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model.name,
                "system_fingerprint": "ember",
                "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": reason}]}

    async def render(items: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[str]:
        yield sse(chunk({"role": "assistant", "content": ""}))
        called = False
        calls: list[Any] = []
        async for kind, value in split_calls(items, tools):
            if kind == "logprob":
                pending.append(logprob_entry(value))
            elif kind == "text":
                yield sse(chunk({"content": value}))
            elif kind == "call":
                called = True
                yield sse(chunk({"tool_calls": [{"index": value.index, "id": value.id, "type": "function",
                                                 "function": {"name": value.name, "arguments": ""}}]}))
            elif kind == "args":
                yield sse(chunk({"tool_calls": [{"index": value.index, "function": {"arguments": value.text}}]}))
            elif kind == "call_end":
                calls.append(value.call)
            elif kind == "end":
                final = chunk({}, _finish(value, called))
                final["ember"] = _extras(job, value, calls)
                yield sse(final)
                if include_usage:
                    yield sse({"id": rid, "object": "chat.completion.chunk", "created": created,
                               "model": model.name, "choices": [], "usage": usage(value)})
                yield sse("[DONE]")
            else:
                yield sse(value)

    return await start_stream(request, job, ctx.scheduler, render, media_type="text/event-stream", headers=ignored)


def _extras(job: Any, stats: Any, calls: Any) -> dict[str, Any]:
    """The ``ember`` field, with the calls whose arguments do not match their tool's schema (they stay in
    ``tool_calls``: an agent answers them with an error, as for any arguments it refuses)."""
    extras = ember_extras(job, stats)
    if invalid := invalid_calls(calls):
        extras["invalid_calls"] = invalid
    return extras


# -- text completions -------------------------------------------------------------------------------------------


@router.post("/completions", summary="Text completion of a raw prompt (OpenAI shape; SSE when stream is true)",
             responses=openapi.responses("openai", openapi.GENERATION, stream=True))
async def completions(body: CompletionRequest, request: Request) -> Response:
    ctx = _ctx(request)
    _check_common(body.n)
    if body.best_of not in (None, 1):
        raise ApiError(400, "'best_of' must be 1.", param="best_of")
    if body.suffix:
        raise ApiError(400, "'suffix' (fill in the middle) is not supported.", param="suffix")
    if body.logprobs:
        raise ApiError(400, "'logprobs' is not supported.", param="logprobs")
    if body.ember is not None:
        raise ApiError(400, "A raw prompt cannot be routed (the router scores a user turn): use "
                       "/v1/chat/completions for 'ember'.", param="ember")
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise ApiError(400, "Give exactly one prompt string.", param="prompt")
    prompt = prompts[0]
    if not prompt:
        raise ApiError(400, "The prompt is empty.", param="prompt")
    options = ctx.sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, min_p=body.min_p,
                           repeat_penalty=body.repeat_penalty, dry_multiplier=body.dry_multiplier, seed=body.seed,
                           stop=stop_list(body.stop),
                           max_tokens=body.max_tokens or 16)
    model, spec = ctx.spec(body.model)
    job = ctx.scheduler.submit(lambda cb: ctx.core.engine.complete(prompt, options, model=spec, on_event=cb),
                               model=model.name, kind="complete")
    rid, created = request_id("cmpl"), int(time.time())
    prefix = prompt if body.echo else ""
    if not body.stream:
        out = await run_to_end(request, job, ctx.scheduler)
        payload = {
            "id": rid, "object": "text_completion", "created": created, "model": model.name,
            "choices": [{"index": 0, "text": prefix + out.result.text, "logprobs": None,
                         "finish_reason": finish_reason(out.stats)}],
            "usage": usage(out.stats), "system_fingerprint": "ember", "ember": ember_extras(job, out.stats),
        }
        return JSONResponse(payload, headers=ember_headers(job, out.stats))

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(text: str, reason: str | None = None) -> dict[str, Any]:
        return {"id": rid, "object": "text_completion", "created": created, "model": model.name,
                "system_fingerprint": "ember",
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}]}

    async def render(items: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[str]:
        if prefix:
            yield sse(chunk(prefix))
        async for kind, value in items:
            if kind == "text":
                yield sse(chunk(value))
            elif kind == "end":
                final = chunk("", finish_reason(value))
                final["ember"] = ember_extras(job, value)
                if include_usage:
                    final["usage"] = usage(value)
                yield sse(final)
                yield sse("[DONE]")
            else:
                yield sse(value)

    return await start_stream(request, job, ctx.scheduler, render, media_type="text/event-stream")


# -- embeddings -------------------------------------------------------------------------------------------------


@router.post("/embeddings", summary="Embeddings of one or more texts (OpenAI shape)",
             responses=openapi.responses("openai", openapi.GENERATION))
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    ctx = _ctx(request)
    if body.dimensions is not None:
        raise ApiError(400, "'dimensions' is not supported: the vector size is the model's.", param="dimensions")
    texts = embedding_texts(body.input)
    model, spec = ctx.spec(body.model)
    job = ctx.scheduler.submit(lambda cb: ctx.core.engine.embed(texts, model=spec, on_event=cb),
                               model=model.name, kind="embed")
    out = await run_to_end(request, job, ctx.scheduler)
    data = []
    for i, vec in enumerate(out.result.vectors):
        value: Any = vec
        if body.encoding_format == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": value})
    n = out.result.prompt_tokens
    return JSONResponse({"object": "list", "data": data, "model": model.name,
                         "usage": {"prompt_tokens": n, "total_tokens": n},
                         "ember": ember_extras(job, None)}, headers=ember_headers(job))


def embedding_texts(value: Any) -> list[str]:
    """The input texts of an embeddings request (token-id inputs are refused)."""
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise ApiError(400, "'input' is empty.", param="input")
    if not all(isinstance(x, str) for x in items):
        raise ApiError(400, "Give 'input' as text (a string or a list of strings); token ids are not "
                            "supported.", param="input")
    if len(items) > 2048:
        raise ApiError(400, "At most 2048 inputs per request.", param="input")
    if any(not x for x in items):
        raise ApiError(400, "An input string is empty.", param="input")
    return items
