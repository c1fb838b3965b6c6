"""OpenAI Responses route: ``POST /v1/responses`` (what the OpenAI Agents SDK and Codex-style tools use).

``input`` as text or items (messages, ``function_call``, ``function_call_output``), ``instructions``, function
tools, ``tool_choice``, ``max_output_tokens`` and streaming with the Responses event sequence. Stateless: nothing
is stored, so ``previous_response_id`` is refused with a 400 that says to send the whole conversation.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.api import openapi
from app.api.context import ApiContext
from app.api.errors import ApiError
from app.api.generation import ember_extras, ember_headers, run_to_end, start_stream
from app.api.schemas import ResponseNamedChoice, ResponsesRequest
from app.api.streaming import sse_event
from app.api.tool_calls import checked_reply, engine_tools, parse_arguments, split_calls
from inference.events import GenerationStats

router = APIRouter(prefix="/v1", tags=["openai"])


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def _text(content: Any, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if part.type not in ("input_text", "output_text", "text", "refusal"):
            raise ApiError(400, f"Only text content is supported (got a {part.type!r} part).", param=param)
        texts.append(part.text or "")
    return "".join(texts)


def _messages(body: ResponsesRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if body.instructions:
        out.append({"role": "system", "content": body.instructions})
    if isinstance(body.input, str):
        if not body.input:
            raise ApiError(400, "'input' is empty.", param="input")
        return out + [{"role": "user", "content": body.input}]
    names: dict[str, str] = {}
    for i, item in enumerate(body.input):
        param = f"input.{i}"
        kind = item.type or ("message" if item.role else None)
        if kind == "message":
            if item.role is None:
                raise ApiError(400, "A message item needs a 'role'.", param=param)
            role = "system" if item.role == "developer" else item.role
            out.append({"role": role, "content": _text(item.content, param + ".content")})
        elif kind == "function_call":
            if not item.name:
                raise ApiError(400, "A function_call item needs a 'name'.", param=param)
            call = {"id": item.call_id or "", "name": item.name,
                    "arguments": parse_arguments(item.arguments or "", param=param + ".arguments")}
            names[item.call_id or ""] = item.name
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            elif last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
                last["tool_calls"] = [call]
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "content": _text(item.output, param + ".output"),
                        "tool_call_id": item.call_id or "", "name": names.get(item.call_id or "", "")})
        elif kind == "reasoning":
            continue
        else:
            raise ApiError(400, f"Input items of type {kind!r} are not supported by Ember (use messages, "
                                "function_call and function_call_output).", param=param)
    if not any(m["role"] != "system" for m in out):
        raise ApiError(400, "'input' has no message.", param="input")
    return out


def _tools(body: ResponsesRequest) -> Any:
    defs = []
    for i, t in enumerate(body.tools or []):
        if t.type != "function" or not t.name:
            raise ApiError(400, f"Only function tools with a 'name' are supported by Ember (got {t.type!r}).",
                           param=f"tools.{i}")
        defs.append(t)
    choice = body.tool_choice
    name = choice.name if isinstance(choice, ResponseNamedChoice) else choice
    return engine_tools(defs, name, body.parallel_tool_calls, schema_at="tools[{index}].parameters")


def _usage(stats: GenerationStats | None) -> dict[str, Any]:
    p = stats.prompt_tokens if stats else 0
    c = stats.completion_tokens if stats else 0
    return {"input_tokens": p, "input_tokens_details": {"cached_tokens": stats.cached_tokens if stats else 0},
            "output_tokens": c, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": p + c}


def _message_item(mid: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": mid, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" or text
            else []}


def _call_item(fid: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": fid, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def _new(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


@router.post("/responses", summary="Responses (OpenAI shape; stateless; SSE events when stream is true)",
             responses=openapi.responses("openai", openapi.GENERATION, stream=True))
async def responses(body: ResponsesRequest, request: Request) -> Response:
    ctx = _ctx(request)
    if body.previous_response_id:
        raise ApiError(400, "Ember's Responses API is stateless (nothing is stored), so 'previous_response_id' "
                            "cannot be used: send the whole conversation in 'input' (and 'store': false).",
                       param="previous_response_id")
    if body.text and body.text.format and body.text.format.type != "text":
        raise ApiError(400, "Only text output is supported by /v1/responses ('text.format' must be 'text'); "
                            "use /v1/chat/completions with 'response_format' for JSON output.", param="text")
    msgs = _messages(body)
    tools = _tools(body)
    options = ctx.sampling(temperature=body.temperature, top_p=body.top_p, max_tokens=body.max_output_tokens)
    model, spec = ctx.spec(body.model)
    job = ctx.submit_chat(msgs, options, model, spec, routing=body.ember, tools=tools)
    rid, created = _new("resp"), int(time.time())
    choice = body.tool_choice
    shown_choice = choice.model_dump() if isinstance(choice, ResponseNamedChoice) else (choice or "auto")

    def response(status: str, output: list[dict[str, Any]], stats: GenerationStats | None) -> dict[str, Any]:
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {"id": rid, "object": "response", "created_at": created, "status": status, "model": model.name,
                "output": output, "error": None, "incomplete_details": incomplete,
                "instructions": body.instructions, "metadata": body.metadata or {},
                "parallel_tool_calls": body.parallel_tool_calls is not False,
                "temperature": body.temperature, "top_p": body.top_p, "max_output_tokens": body.max_output_tokens,
                "tool_choice": shown_choice, "tools": [t.model_dump(exclude_none=True) for t in body.tools or []],
                "previous_response_id": None, "store": False, "text": {"format": {"type": "text"}},
                "truncation": "disabled", "usage": _usage(stats) if stats is not None else None}

    def status_of(stats: GenerationStats | None) -> str:
        return "incomplete" if stats is not None and stats.finish_reason == "length" else "completed"

    if not body.stream:
        out = await run_to_end(request, job, ctx.scheduler)
        reply = checked_reply(out.result.tools, tools)
        text = out.result.text if reply is None else reply.content
        output = [_message_item(_new("msg"), text, "completed")] if text or reply is None or not reply.calls \
            else []
        for c in reply.calls if reply is not None else ():
            output.append(_call_item(_new("fc"), c.id, c.name, c.arguments,
                                     "completed" if c.complete else "incomplete"))
        payload = response(status_of(out.stats), output, out.stats)
        payload["ember"] = ember_extras(job, out.stats)
        return JSONResponse(payload, headers=ember_headers(job, out.stats))

    async def render(items: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[str]:
        seq = 0
        output: list[dict[str, Any]] = []

        def event(kind: str, **data: Any) -> str:
            nonlocal seq
            seq += 1
            return sse_event(kind, {"type": kind, "sequence_number": seq - 1, **data})

        yield event("response.created", response=response("in_progress", [], None))
        yield event("response.in_progress", response=response("in_progress", [], None))
        text_item: dict[str, Any] | None = None
        text_parts: list[str] = []
        call_item: dict[str, Any] | None = None

        def close_text() -> list[str]:
            nonlocal text_item
            if text_item is None:
                return []
            text = "".join(text_parts)
            idx = len(output) - 1
            done = _message_item(text_item["id"], text, "completed")
            output[idx] = done
            part = done["content"][0]
            events = [event("response.output_text.done", item_id=done["id"], output_index=idx, content_index=0,
                            text=text),
                      event("response.content_part.done", item_id=done["id"], output_index=idx, content_index=0,
                            part=part),
                      event("response.output_item.done", output_index=idx, item=done)]
            text_item = None
            text_parts.clear()
            return events

        async for kind, value in split_calls(items, tools):
            if kind == "text":
                if text_item is None:
                    text_item = _message_item(_new("msg"), "", "in_progress")
                    output.append(text_item)
                    idx = len(output) - 1
                    yield event("response.output_item.added", output_index=idx, item=text_item)
                    yield event("response.content_part.added", item_id=text_item["id"], output_index=idx,
                                content_index=0, part={"type": "output_text", "text": "", "annotations": []})
                text_parts.append(value)
                yield event("response.output_text.delta", item_id=text_item["id"], output_index=len(output) - 1,
                            content_index=0, delta=value)
            elif kind == "call":
                for e in close_text():
                    yield e
                call_item = _call_item(_new("fc"), value.id, value.name, "", "in_progress")
                output.append(call_item)
                yield event("response.output_item.added", output_index=len(output) - 1, item=call_item)
            elif kind == "args" and call_item is not None:
                call_item["arguments"] += value.text
                yield event("response.function_call_arguments.delta", item_id=call_item["id"],
                            output_index=len(output) - 1, delta=value.text)
            elif kind == "call_end" and call_item is not None:
                idx = len(output) - 1
                call_item["status"] = "completed" if value.call.complete else "incomplete"
                yield event("response.function_call_arguments.done", item_id=call_item["id"], output_index=idx,
                            arguments=call_item["arguments"])
                yield event("response.output_item.done", output_index=idx, item=call_item)
                call_item = None
            elif kind == "end":
                for e in close_text():
                    yield e
                status = status_of(value)
                final = response(status, output, value)
                final["ember"] = ember_extras(job, value)
                yield event("response.completed" if status == "completed" else "response.incomplete",
                            response=final)
            elif kind == "error":
                err = value.get("error", {})
                yield event("error", code=err.get("code"), message=err.get("message", "error"),
                            param=err.get("param"))

    return await start_stream(request, job, ctx.scheduler, render, media_type="text/event-stream")
