"""The real ``ollama`` client's chat with tools against Ember's ``/api/chat``.

The starter model would not choose a tool by itself and Ollama's API has no ``tool_choice``, so these tests check
the shapes of whatever the reply holds (calls with object arguments that validate, or plain text), and send a
tool result back.
"""

from __future__ import annotations

from typing import Iterator

import jsonschema
import ollama
import pytest

from app.api import ApiServer
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.integration

MODEL = "default"
PARAMS = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
          "required": ["city"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city.",
                                            "parameters": PARAMS}}
# The call a model would have made, sent back with its result (Ollama's shapes).
HISTORY = [{"role": "user", "content": "What is the weather like in Paris?"},
           {"role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
           {"role": "tool", "content": "21 degrees and sunny", "tool_name": "get_weather"}]


@pytest.fixture
def client(server: ApiServer) -> Iterator[ollama.Client]:
    c = ollama.Client(host=server.address, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300)
    yield c
    c.close()


def check(message) -> None:
    for call in message.tool_calls or []:
        assert call.function.name == "get_weather"
        assert isinstance(call.function.arguments, dict)
        jsonschema.validate(call.function.arguments, PARAMS)


def test_chat_with_tools_and_a_tool_result(client: ollama.Client) -> None:
    first = client.chat(model=MODEL, messages=HISTORY[:1], tools=[WEATHER], options={"temperature": 0,
                                                                                     "num_predict": 40})
    assert first.done and first.message.role == "assistant"
    check(first.message)
    assert first.message.tool_calls or first.message.content
    reply = client.chat(model=MODEL, messages=HISTORY, tools=[WEATHER], options={"temperature": 0,
                                                                                 "num_predict": 24})
    assert reply.done and (reply.message.content or reply.message.tool_calls)
    check(reply.message)


def test_streamed_chat_with_tools(client: ollama.Client) -> None:
    parts = list(client.chat(model=MODEL, messages=HISTORY, tools=[WEATHER], stream=True,
                             options={"temperature": 0, "num_predict": 24}))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    for p in parts:
        check(p.message)


def test_forced_call_round_trip(server: ApiServer, client: ollama.Client) -> None:
    """Ember's ``tool_choice`` extension forces a call (the ollama client cannot send it, so httpx does); the reply
    parses as the client's own ChatResponse and goes back through the client with its result."""
    import httpx

    body = {"model": MODEL, "messages": HISTORY[:1], "tools": [WEATHER], "stream": False,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "options": {"temperature": 0, "num_predict": 100}}
    r = httpx.post(server.address + "/api/chat", json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                   timeout=300)
    assert r.status_code == 200, r.text
    first = ollama.ChatResponse.model_validate(r.json())
    assert first.message.tool_calls and first.done_reason in ("stop", "length")
    check(first.message)
    history = HISTORY[:1] + [first.message, {"role": "tool", "content": "21 degrees", "tool_name": "get_weather"}]
    reply = client.chat(model=MODEL, messages=history, tools=[WEATHER], options={"temperature": 0,
                                                                                 "num_predict": 16})
    assert reply.done and (reply.message.content or reply.message.tool_calls)
    check(reply.message)
