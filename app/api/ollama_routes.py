"""Ollama-compatible routes: ``/api/tags``, ``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/version``.

Streaming is on by default (as in Ollama) and sends newline-delimited JSON. Errors use Ollama's
``{"error": "..."}`` shape with the right status code.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app import __version__
from app.api import openapi
from app.api.context import ApiContext, stop_list
from app.api.errors import ApiError
from app.api.generation import ember_extras, ember_headers, run_to_end, start_stream
from app.api.jobs import ApiJob
from app.api.openai_routes import embedding_texts
from app.api.schemas import NamedToolChoice, OllamaChatRequest, OllamaEmbedRequest, OllamaGenerateRequest, \
    OllamaMessage, OllamaOptions
from app.api.streaming import ndjson
from app.api.tool_calls import checked_reply, engine_tools, grammar_error, split_calls
from inference.events import GenerationStats
from inference.grammar import GrammarError, json_grammar
from inference.sampling import MAX_TOKENS_LIMIT, SamplingOptions
from inference.tools import ToolRequest

router = APIRouter(prefix="/api", tags=["ollama"])

# The Ollama API version whose shapes these routes follow (clients compare it with what they need).
OLLAMA_COMPAT_VERSION = "0.9.0"
_NS = 1_000_000  # nanoseconds per millisecond


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@router.get("/version", summary="Ollama-compatible version", responses=openapi.responses("ollama", (401, 403)))
async def version() -> dict[str, str]:
    return {"version": OLLAMA_COMPAT_VERSION, "ember": __version__}


@router.get("/tags", summary="Models of the library (Ollama shape)", responses=openapi.responses("ollama"))
async def tags(request: Request) -> dict[str, Any]:
    models = []
    for m in _ctx(request).core.library.list():
        params = _param_size(m.parameters)
        models.append({
            "name": m.name, "model": m.name, "modified_at": m.added or _now(), "size": m.size,
            "digest": m.sha256 or "",
            "details": {"format": "gguf", "family": m.architecture or "", "families": [m.architecture or ""],
                        "parameter_size": params, "quantization_level": m.quantization or ""},
        })
    return {"models": models}


def _param_size(n: int | None) -> str:
    if not n:
        return ""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}".rstrip("0").rstrip(".") + unit
    return str(n)


def _options(ctx: ApiContext, options: OllamaOptions | None) -> SamplingOptions:
    o = options or OllamaOptions()
    max_tokens = o.num_predict
    if max_tokens is not None and max_tokens <= 0:  # -1 / -2: until the context is full
        max_tokens = MAX_TOKENS_LIMIT
    return ctx.sampling(temperature=o.temperature, top_p=o.top_p, top_k=o.top_k, min_p=o.min_p,
                        repeat_penalty=o.repeat_penalty, repeat_last_n=o.repeat_last_n,
                        dry_multiplier=o.dry_multiplier, seed=o.seed,
                        stop=stop_list(o.stop), max_tokens=max_tokens)


def _grammar(fmt: str | dict[str, Any] | None) -> str | None:
    if not fmt:
        return None
    try:
        return json_grammar() if fmt == "json" else json_grammar(fmt, where="format")  # type: ignore[arg-type]
    except GrammarError as exc:
        raise grammar_error(exc, param="format") from None


def _final_fields(stats: GenerationStats | None) -> dict[str, Any]:
    if stats is None:
        return {"done_reason": "stop"}
    eval_ms = stats.completion_tokens / stats.tokens_per_s * 1000 if stats.tokens_per_s else 0.0
    return {"done_reason": "length" if stats.finish_reason == "length" else "stop",
            "total_duration": int(stats.total_ms * _NS), "load_duration": 0,
            "prompt_eval_count": stats.prompt_tokens, "prompt_eval_duration": int(stats.prompt_ms * _NS),
            "eval_count": stats.completion_tokens, "eval_duration": int(eval_ms * _NS)}


@router.post("/chat", summary="Chat (Ollama shape; NDJSON stream unless stream is false)",
             responses=openapi.responses("ollama", openapi.GENERATION, stream=True))
async def chat(body: OllamaChatRequest, request: Request) -> Response:
    ctx = _ctx(request)
    if any(m.images for m in body.messages):
        raise ApiError(400, "Images are not supported by Ember's API.", param="messages")
    choice = body.tool_choice
    tools = engine_tools([t.function for t in body.tools or []],
                         choice.function.name if isinstance(choice, NamedToolChoice) else choice)
    grammar = _grammar(body.format)
    if tools is not None and grammar is not None:
        raise ApiError(400, "'format' and 'tools' cannot be combined.", param="format")
    model, spec = ctx.spec(body.model)
    if not body.messages:  # Ollama loads the model and answers done
        return await _load_only(ctx, request, model.name, spec, chat=True)
    messages = [_message(m) for m in body.messages]
    options = _options(ctx, body.options)
    job = ctx.submit_chat(messages, options, model, spec, grammar=grammar, routing=body.ember, tools=tools)
    return await _respond(ctx, request, job, model.name, stream=body.stream, chat=True, tools=tools)


def _message(m: OllamaMessage) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        msg["tool_calls"] = [{"name": c.function.name, "arguments": c.function.arguments} for c in m.tool_calls]
    if m.role == "tool" and m.tool_name:
        msg["name"] = m.tool_name
    return msg


def _ollama_calls(calls: Any) -> list[dict[str, Any]]:
    """Calls in Ollama's shape (arguments as an object); a call cut off by the token limit is left out, as
    Ollama sends only complete calls."""
    return [{"function": {"index": i, "name": c.name, "arguments": c.parsed_arguments()}}
            for i, c in enumerate(calls) if c.complete]


@router.post("/generate", summary="Generate from a prompt (Ollama shape; NDJSON stream unless stream is false)",
             responses=openapi.responses("ollama", openapi.GENERATION, stream=True))
async def generate(body: OllamaGenerateRequest, request: Request) -> Response:
    ctx = _ctx(request)
    if body.images:
        raise ApiError(400, "Images are not supported by Ember's API.", param="images")
    if body.suffix:
        raise ApiError(400, "'suffix' (fill in the middle) is not supported.", param="suffix")
    model, spec = ctx.spec(body.model)
    if not body.prompt:
        return await _load_only(ctx, request, model.name, spec, chat=False)
    options = _options(ctx, body.options)
    grammar = _grammar(body.format)
    if body.raw:
        if body.ember is not None:
            raise ApiError(400, "A raw prompt cannot be routed (the router scores a user turn): leave out 'raw' "
                           "or 'ember'.", param="ember")
        prompt = body.prompt
        job = ctx.scheduler.submit(
            lambda cb: ctx.core.engine.complete(prompt, options, model=spec, on_event=cb, grammar=grammar),
            model=model.name, kind="complete")
    else:
        messages = ([{"role": "system", "content": body.system}] if body.system else []) + \
                   [{"role": "user", "content": body.prompt}]
        job = ctx.submit_chat(messages, options, model, spec, grammar=grammar, routing=body.ember)
    return await _respond(ctx, request, job, model.name, stream=body.stream, chat=False)


@router.post("/embed", summary="Embeddings (Ollama shape)", responses=openapi.responses("ollama", openapi.GENERATION))
async def embed(body: OllamaEmbedRequest, request: Request) -> Response:
    ctx = _ctx(request)
    texts = embedding_texts(body.input)
    model, spec = ctx.spec(body.model)
    job = ctx.scheduler.submit(lambda cb: ctx.core.engine.embed(texts, model=spec, on_event=cb),
                               model=model.name, kind="embed")
    started = time.perf_counter()
    out = await run_to_end(request, job, ctx.scheduler)
    return JSONResponse({"model": model.name, "embeddings": out.result.vectors,
                         "total_duration": int((time.perf_counter() - started) * 1e9),
                         "prompt_eval_count": out.result.prompt_tokens}, headers=ember_headers(job))


async def _respond(ctx: ApiContext, request: Request, job: ApiJob, name: str, *, stream: bool,
                   chat: bool, tools: ToolRequest | None = None) -> Response:
    """A generation's answer in Ollama's shape: one JSON object, or NDJSON pieces and a final object with stats.
    ``chat``: the text goes in ``message`` (``/api/chat``), else in ``response`` (``/api/generate``). ``tools``:
    the reply may call tools; each call goes out in ``message.tool_calls`` once complete (as Ollama does; a call
    whose arguments do not match the tool's schema is left out, as a cut-off one)."""
    if not stream:
        out = await run_to_end(request, job, ctx.scheduler)
        reply = checked_reply(out.result.tools, tools)
        body = _text(out.result.text if reply is None else reply.content, chat)
        if reply is not None and reply.calls:
            body["message"]["tool_calls"] = _ollama_calls(reply.calls)
        return JSONResponse({"model": name, "created_at": _now(), **body, "done": True,
                             **_final_fields(out.stats), "ember": ember_extras(job, out.stats)},
                            headers=ember_headers(job, out.stats))

    async def render(items: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[str]:
        async for kind, value in split_calls(items, tools):
            if kind == "call_end" and value.call.complete:
                message = {"role": "assistant", "content": "", "tool_calls": _ollama_calls([value.call])}
                message["tool_calls"][0]["function"]["index"] = value.index
                yield ndjson({"model": name, "created_at": _now(), "message": message, "done": False})
            elif kind in ("call", "args", "call_end", "logprob"):
                continue
            elif kind == "text":
                yield ndjson({"model": name, "created_at": _now(), **_text(value, chat), "done": False})
            elif kind == "end":
                yield ndjson({"model": name, "created_at": _now(), **_text("", chat), "done": True,
                              **_final_fields(value), "ember": ember_extras(job, value)})
            else:
                yield ndjson(value)

    return await start_stream(request, job, ctx.scheduler, render, media_type="application/x-ndjson",
                              ollama=True)


def _text(text: str, chat: bool) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": text}} if chat else {"response": text}


async def _load_only(ctx: ApiContext, request: Request, name: str, spec: Any, *, chat: bool) -> Response:
    """Ollama's "load the model" request (no prompt or no messages)."""
    job = ctx.scheduler.submit(lambda cb: ctx.core.engine.load(spec, on_event=cb), model=name, kind="load")
    await run_to_end(request, job, ctx.scheduler)
    return JSONResponse({"model": name, "created_at": _now(), **_text("", chat), "done": True,
                         "done_reason": "load"})
