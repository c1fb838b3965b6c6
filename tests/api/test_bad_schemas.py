"""A schema that is not valid JSON Schema (a tool's parameters, an output format) is a 400 naming the bad part,
in each API shape's own error format, never a 500."""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest

from app.api import ApiServer

pytestmark = pytest.mark.integration

# (bad schema, what the message says about it)
BAD = [
    ({"type": "object", "properties": [1, 2]}, "properties: [1, 2] is not of type 'object'"),
    ({"type": "object", "properties": "abc"}, "properties: 'abc' is not of type 'object'"),
    ({"type": "object", "properties": {"xs": {"type": "array", "items": 5}}},
     "properties.xs.items: 5 is not of type 'object', 'boolean'"),
    ({"type": "object", "minItems": "x"}, "minItems: 'x' is not of type 'integer'"),
]
USER = [{"role": "user", "content": "hi"}]


def _openai(response: httpx.Response) -> str:
    err = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert err["code"] == "invalid_schema"
    return err["message"]


def _anthropic(response: httpx.Response) -> str:
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    return body["error"]["message"]


def _ollama(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    return body["error"]


def _fn(schema: dict) -> list[dict]:
    return [{"type": "function", "function": {"name": "f", "parameters": schema}}]


# route, body for a schema, where the message says the schema is, how the shape's error body reads
SHAPES: list[tuple[str, Callable[[dict], dict[str, Any]], str, Callable[[httpx.Response], str]]] = [
    ("/v1/chat/completions", lambda s: {"model": "default", "messages": USER, "max_tokens": 2, "tools": _fn(s)},
     "tools[0].function.parameters", _openai),
    ("/v1/chat/completions", lambda s: {"model": "default", "messages": USER, "max_tokens": 2, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": s}}},
     "response_format.json_schema.schema", _openai),
    ("/v1/responses", lambda s: {"model": "default", "input": "hi", "max_output_tokens": 2, "tools": [
        {"type": "function", "name": "f", "parameters": s}]}, "tools[0].parameters", _openai),
    ("/v1/messages", lambda s: {"model": "default", "max_tokens": 2, "messages": USER, "tools": [
        {"name": "f", "input_schema": s}]}, "tools[0].input_schema", _anthropic),
    ("/api/chat", lambda s: {"model": "default", "messages": USER, "stream": False, "tools": _fn(s)},
     "tools[0].function.parameters", _ollama),
    ("/api/chat", lambda s: {"model": "default", "messages": USER, "stream": False, "format": s}, "format",
     _ollama),
    ("/api/generate", lambda s: {"model": "default", "prompt": "hi", "stream": False, "format": s}, "format",
     _ollama),
]


@pytest.mark.parametrize("route, body, where, read", SHAPES,
                         ids=[f"{s[0]}:{s[2]}" for s in SHAPES])
@pytest.mark.parametrize("schema, says", BAD, ids=["properties-list", "properties-str", "items-int",
                                                   "minItems-str"])
def test_invalid_schema_is_a_400_naming_the_bad_part(http: httpx.Client, route: str, body: Callable, where: str,
                                                     read: Callable, schema: dict, says: str) -> None:
    response = http.post(route, json=body(schema))
    assert response.status_code == 400, response.text
    message = read(response)
    assert message.startswith(f"{where}: {says}"), message
    assert "Traceback" not in response.text and "AttributeError" not in response.text


def test_the_second_tool_is_named_by_its_place(http: httpx.Client) -> None:
    tools = _fn({"type": "object"}) + [{"type": "function", "function": {"name": "g", "parameters": {
        "type": "object", "properties": [1, 2]}}}]
    response = http.post("/v1/chat/completions", json={"model": "default", "messages": USER, "tools": tools})
    assert _openai(response).startswith("tools[1].function.parameters: properties: [1, 2] is not of type 'object'")
    assert response.json()["error"]["param"] == "tools"


def test_valid_schemas_are_still_served(server: ApiServer, http: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    response = http.post("/api/chat", json={"model": "default", "messages": USER, "stream": False, "format": schema,
                                            "options": {"num_predict": 8}})
    assert response.status_code == 200, response.text
