"""The real ``openai`` client's Responses API (and the ``openai-agents`` SDK on top of it) against Ember.

Function calls are forced (``tool_choice`` naming the function); only structure, event order and schema
validity are checked, never the text or argument values the starter model picks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Iterator

import jsonschema
import openai
import pytest

from app.api import ApiServer
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.integration

MODEL = "default"
PARAMS = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
          "required": ["city", "unit"], "additionalProperties": False}
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather in a city.",
           "parameters": PARAMS, "strict": True}
FORCED = {"type": "function", "name": "get_weather"}
ASK = "What is the weather like in Paris?"


@pytest.fixture
def client(server: ApiServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.address + "/v1", api_key=TOKEN, max_retries=0, timeout=300) as c:
        yield c


def test_text_response_with_instructions(client: openai.OpenAI) -> None:
    r = client.responses.create(model=MODEL, input="Say hello.", instructions="You are terse.",
                                max_output_tokens=8, temperature=0, store=False)
    assert r.object == "response" and r.id.startswith("resp_") and r.status in ("completed", "incomplete")
    assert r.output[0].type == "message" and r.output_text
    assert r.usage.output_tokens >= 1 and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_function_call_round_trip(client: openai.OpenAI) -> None:
    r = client.responses.create(model=MODEL, input=ASK, tools=[WEATHER], tool_choice=FORCED,
                                parallel_tool_calls=False, temperature=0, max_output_tokens=100)
    calls = [o for o in r.output if o.type == "function_call"]
    assert r.status == "completed" and len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_") and call.status == "completed"
    jsonschema.validate(json.loads(call.arguments), PARAMS)

    items = [{"role": "user", "content": ASK},
             {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
             {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 21}'}]
    answer = client.responses.create(model=MODEL, input=items, tools=[WEATHER], tool_choice="none",
                                     temperature=0, max_output_tokens=16)
    assert [o.type for o in answer.output] == ["message"] and answer.output_text


def test_streamed_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input=ASK, tools=[WEATHER], tool_choice=FORCED,
                                          parallel_tool_calls=False, temperature=0, max_output_tokens=100,
                                          stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = kinds.index("response.output_item.added")
    assert "response.function_call_arguments.delta" in kinds[added:]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert deltas == done.arguments
    jsonschema.validate(json.loads(done.arguments), PARAMS)
    final = events[-1].response
    assert [o.type for o in final.output] == ["function_call"] and final.output[0].arguments == done.arguments

    text = list(client.responses.create(model=MODEL, input="Say hello.", max_output_tokens=8, stream=True))
    kinds = [e.type for e in text]
    assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete")
    for k in ("response.output_item.added", "response.content_part.added", "response.output_text.delta",
              "response.output_text.done", "response.content_part.done", "response.output_item.done"):
        assert k in kinds
    deltas = "".join(e.delta for e in text if e.type == "response.output_text.delta")
    assert deltas == next(e.text for e in text if e.type == "response.output_text.done")


def test_previous_response_id_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="stateless"):
        client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_123")


@pytest.mark.timeout(900)  # two model turns through the SDK; slow where the CPU is shared
def test_openai_agents_sdk_runs_a_function_tool(server: ApiServer) -> None:
    agents = pytest.importorskip("agents")
    from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, function_tool

    seen: list[dict] = []

    @function_tool
    def get_weather(city: str, unit: str) -> str:
        """Get the current weather in a city.

        Args:
            city: the city.
            unit: celsius or fahrenheit.
        """
        seen.append({"city": city, "unit": unit})
        return "21 degrees and sunny"

    async def run() -> object:
        async with openai.AsyncOpenAI(base_url=server.address + "/v1", api_key=TOKEN, max_retries=0,
                                      timeout=300) as client:
            model = OpenAIResponsesModel(model=MODEL, openai_client=client)
            # The run ends with the tool's output: a second, free-text turn of the starter could run into the
            # token limit, which the SDK treats as an error, and its words prove nothing here.
            agent = Agent(name="weather", instructions="Answer with the weather tool.", tools=[get_weather],
                          model=model, tool_use_behavior="stop_on_first_tool",
                          model_settings=ModelSettings(tool_choice="get_weather", temperature=0, max_tokens=100,
                                                       parallel_tool_calls=False))
            return await Runner.run(agent, ASK, max_turns=2, run_config=RunConfig(tracing_disabled=True))

    result = asyncio.run(run())
    assert len(seen) == 1 and all(isinstance(a["city"], str) and isinstance(a["unit"], str) for a in seen)
    assert result.final_output == "21 degrees and sunny"
    assert agents is not None
