"""What coding agents (Claude Code, Codex, opencode, qwen-code) send, with the real ``anthropic`` and ``openai``
clients (httpx where a client cannot send the shape): Anthropic's system messages and extra fields, token
counting, OpenAI's newer fields, tool schemas the grammar cannot follow whole, JSON sent as a form.

Fields Ember accepts but does not act on are named in the ``X-Ember-Ignored`` header. Only structure is checked,
never the words the starter model picks; replies are a few tokens long.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import anthropic
import httpx
import openai
import pytest

from app.api import ApiServer
from app.api.tool_calls import checked_reply, invalid_calls
from inference.tools import ToolCall, ToolReply, tool_request
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.integration

MODEL = "default"
ASK = [{"role": "user", "content": "Say hello."}]
# What Claude Code adds to a Messages request besides the conversation.
CLAUDE_EXTRAS = {"thinking": {"type": "enabled", "budget_tokens": 1024},
                 "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
                 "output_config": {"effort": "medium"}, "temperature": 0}
CLAUDE_IGNORED = "thinking, context_management, output_config"


@pytest.fixture
def claude(server: ApiServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.address, api_key=TOKEN, max_retries=0, timeout=300) as c:
        yield c


@pytest.fixture
def oai(server: ApiServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.address + "/v1", api_key=TOKEN, max_retries=0, timeout=300) as c:
        yield c


# -- Anthropic Messages -----------------------------------------------------------------------------------------


def test_claude_code_request_is_accepted_and_ignored_fields_are_named(claude: anthropic.Anthropic) -> None:
    raw = claude.beta.messages.with_raw_response.create(  # to /v1/messages?beta=true, as Claude Code posts
        model=MODEL, max_tokens=4, betas=["interleaved-thinking-2025-05-14"], extra_query={"beta": "true"},
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Say hello.",
                                                "cache_control": {"type": "ephemeral"}}]},
                  {"role": "system", "content": "Answer in one word."}],
        metadata={"user_id": "user_abc"}, extra_body=CLAUDE_EXTRAS)
    assert raw.http_request.url.params.get("beta") == "true"
    assert raw.headers["x-ember-ignored"] == CLAUDE_IGNORED
    msg = raw.parse()
    assert msg.type == "message" and msg.stop_reason in ("end_turn", "max_tokens")
    assert 1 <= msg.usage.output_tokens <= 4


def test_a_disabled_thinking_and_known_fields_are_not_named(claude: anthropic.Anthropic) -> None:
    raw = claude.messages.with_raw_response.create(model=MODEL, max_tokens=2, messages=ASK,
                                                   metadata={"user_id": "u"},
                                                   extra_body={"thinking": {"type": "disabled"}})
    assert "x-ember-ignored" not in raw.headers
    raw = claude.messages.with_raw_response.create(model=MODEL, max_tokens=2, messages=ASK,
                                                   extra_body={"service_tier": "auto"})
    assert raw.headers["x-ember-ignored"] == "service_tier"  # unknown fields are named too


def test_streamed_reply_names_ignored_fields(claude: anthropic.Anthropic) -> None:
    with claude.messages.with_streaming_response.create(model=MODEL, max_tokens=3, messages=ASK, stream=True,
                                                         extra_body=CLAUDE_EXTRAS) as raw:
        assert raw.headers["x-ember-ignored"] == CLAUDE_IGNORED
        kinds = [json.loads(line[len("data: "):])["type"] for line in raw.iter_lines() if line.startswith("data: ")]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_system_messages_join_the_system_prompt_in_order(claude: anthropic.Anthropic) -> None:
    def count(system: Any, messages: list[dict[str, Any]]) -> int:
        kwargs = {"system": system} if system is not None else {}
        return claude.messages.count_tokens(model=MODEL, messages=messages, **kwargs).input_tokens

    user = {"role": "user", "content": "Say hello."}
    folded = count(None, [user, {"role": "system", "content": "Be terse."},
                          {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]}])
    assert folded == count("Be terse.\n\nAnswer in French.", [user])
    assert count([{"type": "text", "text": "Be brief."}], [{"role": "system", "content": "Be terse."}, user]) \
        == count("Be brief.\n\nBe terse.", [user])
    assert folded != count("Be terse.", [user])


def test_only_system_messages_is_a_400(http: httpx.Client) -> None:
    response = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 2,
                                               "messages": [{"role": "system", "content": "Be terse."}]})
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "error" and "user or assistant" in response.json()["error"]["message"]


def test_count_tokens_takes_the_same_bodies(claude: anthropic.Anthropic, http: httpx.Client) -> None:
    tool = {"name": "Workflow", "description": "Run a workflow.", "input_schema": WORKFLOW}
    plain = claude.messages.count_tokens(model=MODEL, messages=ASK).input_tokens
    with_tool = claude.beta.messages.count_tokens(model=MODEL, messages=ASK, tools=[tool],
                                                  tool_choice={"type": "auto", "disable_parallel_tool_use": True},
                                                  extra_body=CLAUDE_EXTRAS).input_tokens
    assert 0 < plain < with_tool
    response = http.post("/v1/messages/count_tokens?beta=true",
                         json={"model": MODEL, "max_tokens": 16, "messages": ASK, **CLAUDE_EXTRAS})
    assert response.status_code == 200 and response.json() == {"input_tokens": plain}
    assert response.headers["x-ember-ignored"] == CLAUDE_IGNORED
    bad = http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": []})
    assert bad.status_code == 400 and bad.json()["type"] == "error"


# -- OpenAI Chat Completions ------------------------------------------------------------------------------------


def test_developer_role_and_max_completion_tokens(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=16, max_completion_tokens=2, reasoning_effort="low", temperature=0,
        messages=[{"role": "developer", "content": "You are terse."}, {"role": "user", "content": "Say hello."}])
    assert raw.headers["x-ember-ignored"] == "reasoning_effort"
    reply = raw.parse()
    assert reply.usage.completion_tokens <= 2  # max_completion_tokens wins over max_tokens
    # the developer message is the system prompt: the same prompt as with a system message
    same = oai.chat.completions.create(model=MODEL, max_completion_tokens=1, messages=[
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}])
    assert same.usage.prompt_tokens == reply.usage.prompt_tokens


def test_stream_options_include_usage(oai: openai.OpenAI) -> None:
    with oai.chat.completions.with_streaming_response.create(
            model=MODEL, max_completion_tokens=3, messages=ASK, stream=True, reasoning_effort="minimal",
            stream_options={"include_usage": True}) as raw:
        assert raw.headers["x-ember-ignored"] == "reasoning_effort"
        chunks = list(raw.parse())
    assert chunks[-1].choices == [] and 1 <= chunks[-1].usage.completion_tokens <= 3
    assert all(c.usage is None for c in chunks[:-1])


# -- tool schemas -----------------------------------------------------------------------------------------------

# Claude Code's Workflow tool: a property with no type.
WORKFLOW = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"script": {"type": "string"}, "inputs": {"description": "Inputs of the script."}},
            "required": ["script"], "additionalProperties": False}
HARD_SCHEMAS = {
    "no-type": WORKFLOW,
    "ref": {"type": "object", "$defs": {"unit": {"enum": ["c", "f"]}}, "properties": {"u": {"$ref": "#/$defs/unit"}}},
    "recursive": {"type": "object", "properties": {"label": {"type": "string"},
                                                   "children": {"type": "array", "items": {"$ref": "#"}}}},
    "recursive-defs": {"type": "object", "definitions": {"node": {"type": "object", "properties": {
        "next": {"$ref": "#/definitions/node"}}}}, "properties": {"head": {"$ref": "#/definitions/node"}}},
    "any-one-of": {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                                                    "b": {"oneOf": [{"type": "integer"}, {"type": "boolean"}]}}},
    "additional": {"type": "object", "additionalProperties": {"type": "string"}},
    "pattern": {"type": "object", "patternProperties": {"^x_": {"type": "number"}},
                "additionalProperties": False},
    "format": {"type": "object", "properties": {"url": {"type": "string", "format": "uri"},
                                                "when": {"type": "string", "format": "date-time"}}},
    "not": {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
    "deep-pointer": {"type": "object", "$defs": {"r": {"type": "object", "properties": {"c": {"type": "string"}}}},
                     "properties": {"a": {"$ref": "#/$defs/r/properties/c"}}},
}


@pytest.mark.parametrize("schema", list(HARD_SCHEMAS.values()), ids=list(HARD_SCHEMAS))
def test_any_valid_tool_schema_is_accepted(http: httpx.Client, schema: dict[str, Any]) -> None:
    chat = http.post("/v1/chat/completions", json={
        "model": MODEL, "max_tokens": 4, "messages": ASK, "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]})
    assert chat.status_code == 200, chat.text
    messages = http.post("/v1/messages", json={
        "model": MODEL, "max_tokens": 4, "messages": ASK, "tool_choice": {"type": "any"},
        "tools": [{"name": "f", "input_schema": schema}]})
    assert messages.status_code == 200, messages.text


def test_every_hard_schema_together_with_the_anthropic_client(claude: anthropic.Anthropic) -> None:
    tools = [{"name": f"t_{name.replace('-', '_')}", "input_schema": schema} for name, schema in HARD_SCHEMAS.items()]
    # 16 tokens may end before the call's name: a call, if any, is the forced one
    msg = claude.messages.create(model=MODEL, max_tokens=16, messages=ASK, tools=tools,
                                 tool_choice={"type": "tool", "name": "t_no_type"}, extra_body={"temperature": 0})
    assert msg.stop_reason in ("tool_use", "max_tokens")
    assert {b.name for b in msg.content if b.type == "tool_use"} <= {"t_no_type"}
    with claude.messages.stream(model=MODEL, max_tokens=16, messages=ASK, tools=tools,
                                tool_choice={"type": "tool", "name": "t_recursive"}) as stream:
        final = stream.get_final_message()
    assert {b.name for b in final.content if b.type == "tool_use"} <= {"t_recursive"}


def test_an_invalid_schema_stays_a_400(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"tools\[0\].input_schema: properties: \[1, 2\]"):
        claude.messages.create(model=MODEL, max_tokens=2, messages=ASK,
                               tools=[{"name": "f", "input_schema": {"type": "object", "properties": [1, 2]}}])


def test_calls_that_break_their_schema_are_reported() -> None:
    tools = tool_request([{"name": "Workflow", "parameters": WORKFLOW}])
    good = ToolCall("Workflow", '{"script": "run", "inputs": {"a": 1}}')
    bad = ToolCall("Workflow", '{"inputs": 1}')
    cut = ToolCall("Workflow", '{"scr', complete=False)
    reply = checked_reply(ToolReply("", (good, bad, cut)), tools)
    assert reply is not None and reply.calls[0] == good and reply.calls[2] == cut
    assert not reply.calls[1].complete and reply.calls[1].error == "'script' is a required property"
    assert invalid_calls(reply.calls) == [{"index": 1, "name": "Workflow",
                                           "error": "'script' is a required property"}]
    assert checked_reply(None, tools) is None


# -- JSON sent as a form ----------------------------------------------------------------------------------------

FORM_BODIES = [
    ("/v1/chat/completions", {"model": MODEL, "max_tokens": 2, "messages": ASK}),
    ("/v1/completions", {"model": MODEL, "max_tokens": 2, "prompt": "Hello"}),
    ("/v1/responses", {"model": MODEL, "max_output_tokens": 2, "input": "Say hello."}),
    ("/v1/messages", {"model": MODEL, "max_tokens": 2, "messages": ASK}),
    ("/v1/messages/count_tokens", {"model": MODEL, "messages": ASK}),
    ("/v1/embeddings", {"model": MODEL, "input": "hello"}),
    ("/api/chat", {"model": MODEL, "messages": ASK, "stream": False, "options": {"num_predict": 2}}),
    ("/api/generate", {"model": MODEL, "prompt": "Hello", "stream": False, "options": {"num_predict": 2}}),
    ("/api/embed", {"model": MODEL, "input": "hello"}),
]


@pytest.mark.parametrize("route, body", FORM_BODIES, ids=[r for r, _ in FORM_BODIES])
def test_json_sent_as_a_form_is_accepted(http: httpx.Client, route: str, body: dict[str, Any]) -> None:
    response = http.post(route, content=json.dumps(body).encode(),  # as `curl -d` sends it
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", None, "application/vnd.api+json"])
def test_json_with_another_or_no_content_type_is_accepted(http: httpx.Client, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = http.post("/v1/messages", content=json.dumps(FORM_BODIES[3][1]).encode(), headers=headers)
    assert response.status_code == 200, response.text


def test_a_form_that_is_not_json_is_a_400_naming_json(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", data={"model": MODEL, "max_tokens": "2"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_ignored_field_names_a_header_cannot_carry_are_counted(http: httpx.Client) -> None:
    body = {"model": MODEL, "max_tokens": 1, "messages": ASK, "caf\u00e9\U0008bcc9": 1,
            **{f"x{i}": i for i in range(20)}}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-ember-ignored"] == ", ".join(sorted(f"x{i}" for i in range(20))[:16] + ["5 more"])
