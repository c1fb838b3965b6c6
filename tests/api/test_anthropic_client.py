"""The real ``anthropic`` client against Ember's ``/v1/messages``.

As in the other tool tests, calls are forced (``tool_choice`` ``tool`` / ``any``) and only structure and schema
validity are checked, never the words or argument values the starter model picks.
"""

from __future__ import annotations

from typing import Iterator

import anthropic
import httpx
import jsonschema
import pytest

from app.api import ApiServer
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.integration

MODEL = "default"
WEATHER = {"name": "get_weather", "description": "Get the current weather in a city.",
           "input_schema": {"type": "object",
                            "properties": {"city": {"type": "string", "maxLength": 40},
                                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                            "required": ["city", "unit"], "additionalProperties": False}}
ASK = [{"role": "user", "content": "What is the weather like in Paris?"}]
FORCED = {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}


@pytest.fixture
def client(server: ApiServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.address, api_key=TOKEN, max_retries=0, timeout=300) as c:
        yield c


def test_message_with_system_and_blocks(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model=MODEL, max_tokens=8, system="You are terse.",
                                 extra_body={"temperature": 0},
                                 messages=[{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}])
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert msg.model == "smollm2-135m-instruct"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert 1 <= msg.usage.output_tokens <= 8 and msg.usage.input_tokens > 5


def test_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model=MODEL, max_tokens=100, messages=ASK, tools=[WEATHER], tool_choice=FORCED,
                                 extra_body={"temperature": 0})
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].id.startswith("toolu_")
    jsonschema.validate(uses[0].input, WEATHER["input_schema"])

    follow = client.messages.create(model=MODEL, max_tokens=16, extra_body={"temperature": 0}, tools=[WEATHER],
                                    messages=ASK + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                      "content": "21 degrees, clear sky"}]}],
        tool_choice={"type": "none"})
    assert follow.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in follow.content] == ["text"]


def test_streaming_event_sequence_and_tool_use(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=100, messages=ASK, tools=[WEATHER], tool_choice=FORCED,
                                extra_body={"temperature": 0}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    raw = [k for k in kinds if k in ("message_start", "content_block_start", "content_block_delta",
                                     "content_block_stop", "message_delta", "message_stop")]
    assert raw[0] == "message_start" and raw[-2:] == ["message_delta", "message_stop"]
    assert raw[1] == "content_block_start" and raw[-3] == "content_block_stop"
    assert "content_block_delta" in raw
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather"
    jsonschema.validate(uses[0].input, WEATHER["input_schema"])


def test_streamed_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=8, messages=ASK, extra_body={"temperature": 0}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens >= 1


def test_errors_are_anthropic_shaped_and_x_api_key_is_the_token(server: ApiServer) -> None:
    with anthropic.Anthropic(base_url=server.address, api_key="wrong", max_retries=0, timeout=60) as bad, \
            pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model=MODEL, max_tokens=4, messages=ASK)
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "authentication_error"
    r = httpx.post(server.address + "/v1/messages", headers={"x-api-key": TOKEN},
                   json={"model": "nope", "max_tokens": 4, "messages": ASK}, timeout=60)
    assert r.status_code == 404 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "not_found_error"
    r = httpx.post(server.address + "/v1/messages", headers={"x-api-key": TOKEN},
                   json={"model": MODEL, "messages": ASK}, timeout=60)  # max_tokens is required
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_models_list_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["smollm2-135m-instruct"]
    assert models.data[0].type == "model" and models.data[0].display_name
