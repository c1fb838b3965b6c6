"""Tool calls and logprobs through the real ``openai`` client against Ember's chat completions.

The starter model is too small to choose a tool by itself, so the round trips force one (``tool_choice``
``required`` or a named function). Nothing here depends on which arguments the model picks: every check is on
structure (names, ids, finish reasons, chunk shapes) and on the arguments validating against their schema, which
holds on every CPU.
"""

from __future__ import annotations

import json
import math
from typing import Iterator

import jsonschema
import openai
import pytest

from app.api import ApiServer
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.integration

MODEL = "default"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the time in a time zone.",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 40},
                                                    "hours24": {"type": "boolean"}},
                   "required": ["zone"], "additionalProperties": False}}}
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
ASK = [{"role": "user", "content": "What is the weather like in Paris?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.fixture
def client(server: ApiServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.address + "/v1", api_key=TOKEN, max_retries=0, timeout=300) as c:
        yield c


def check_call(name: str, arguments: str) -> dict:
    assert name in SCHEMAS
    args = json.loads(arguments)
    jsonschema.validate(args, SCHEMAS[name])
    return args


def test_forced_call_round_trip(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME], tool_choice=NAMED,
                                           parallel_tool_calls=False, temperature=0, max_tokens=100)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert len(calls) == 1 and calls[0].type == "function" and calls[0].id.startswith("call_")
    assert calls[0].function.name == "get_weather"
    check_call("get_weather", calls[0].function.arguments)

    history = ASK + [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temperature": 21, "sky": "clear"}'}]
    answer = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER, TIME],
                                            tool_choice="none", temperature=0, max_tokens=24)
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_required_choice_calls_given_tools_with_valid_arguments(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME], tool_choice="required",
                                           temperature=0, max_tokens=120)
    choice = reply.choices[0]
    assert choice.finish_reason in ("tool_calls", "length")
    calls = choice.message.tool_calls
    assert calls and len({c.id for c in calls}) == len(calls)
    complete = calls if choice.finish_reason == "tool_calls" else calls[:-1]  # the last may be cut off by length
    for call in complete:
        check_call(call.function.name, call.function.arguments)


def test_streamed_tool_call_deltas_reassemble_to_the_whole_reply(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice=NAMED, parallel_tool_calls=False,
                  temperature=0, max_tokens=100)
    whole = client.chat.completions.create(**kwargs).choices[0]
    calls: dict[int, dict] = {}
    reasons = []
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for choice in chunk.choices:
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
            for d in choice.delta.tool_calls or []:
                if d.index not in calls:  # the first delta of a call: id, type, name, empty arguments
                    assert d.id and d.id.startswith("call_") and d.type == "function"
                    assert d.function.name and d.function.arguments == ""
                    calls[d.index] = {"id": d.id, "name": d.function.name, "arguments": ""}
                else:  # then fragments of the arguments only
                    assert d.id is None and d.function.name is None
                    calls[d.index]["arguments"] += d.function.arguments
    assert reasons == ["tool_calls"] == [whole.finish_reason]
    assert list(calls) == [0] and len(whole.message.tool_calls) == 1
    assert calls[0]["name"] == whole.message.tool_calls[0].function.name == "get_weather"
    check_call("get_weather", calls[0]["arguments"])
    check_call("get_weather", whole.message.tool_calls[0].function.arguments)


def test_tool_errors_are_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER],
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(openai.BadRequestError, match="arguments"):
        client.chat.completions.create(model=MODEL, messages=ASK + [
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                  "function": {"name": "get_weather", "arguments": "[1"}}]}])


def test_logprobs_top1_is_the_chosen_token_at_temperature_zero(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=10, logprobs=True,
                                           top_logprobs=5)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    for t in content:
        assert len(t.top_logprobs) == 5
        assert t.top_logprobs[0].token == t.token and t.top_logprobs[0].logprob == pytest.approx(t.logprob)
        assert [a.logprob for a in t.top_logprobs] == sorted((a.logprob for a in t.top_logprobs), reverse=True)
        assert sum(math.exp(a.logprob) for a in t.top_logprobs) <= 1 + 1e-6
        assert t.logprob <= 0 and bytes(t.bytes).decode("utf-8", errors="replace") == t.token


def test_streamed_logprobs_cover_every_token(client: openai.OpenAI) -> None:
    entries, text = [], []
    for chunk in client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=10,
                                                logprobs=True, top_logprobs=20, stream=True):
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.logprobs and choice.logprobs.content:
                entries += choice.logprobs.content
    assert entries and "".join(t.token for t in entries) == "".join(text)
    for t in entries:
        assert len(t.top_logprobs) == 20 and t.top_logprobs[0].token == t.token
        assert sum(math.exp(a.logprob) for a in t.top_logprobs) <= 1 + 1e-6
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=ASK, top_logprobs=3)
