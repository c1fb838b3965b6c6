"""The real ``openai`` client against Ember's OpenAI-compatible routes."""

from __future__ import annotations

import json
import math
from typing import Iterator

import openai
import pytest

from app.api import ApiServer
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.integration

MODEL = "default"
HELLO = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]


@pytest.fixture
def client(server: ApiServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.address + "/v1", api_key=TOKEN, max_retries=0, timeout=30) as c:
        yield c


def test_models_list_names_library_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["smollm2-135m-instruct"]


def test_chat_completion_returns_text_usage_and_ember_stats(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, max_tokens=8,
                                                           temperature=0)
    reply = raw.parse()
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5 and 1 <= reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.model == "smollm2-135m-instruct"
    ember = reply.model_extra["ember"]
    assert ember["stats"]["completion_tokens"] == reply.usage.completion_tokens
    assert raw.headers["x-ember-model"] == "smollm2-135m-instruct"
    assert int(raw.headers["x-ember-completion-tokens"]) == reply.usage.completion_tokens


# Two requests for the same prompt are compared only after a third one before them: each then finds the prompt
# cached and evaluates its last token alone, the same way, so their greedy text is the same on any CPU. (A first
# request evaluates the whole prompt in one batch, with other rounding: near-ties may fall the other way.)


def test_chat_streaming_matches_non_streaming_at_temperature_zero(client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, temperature=0)  # the cache
    whole = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, temperature=0)
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    parts, reasons, usage = [], [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert "".join(parts) == whole.choices[0].message.content
    assert reasons == [whole.choices[0].finish_reason]
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    texts = [client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=10, temperature=1.0,
                                            seed=1234).choices[0].message.content for _ in range(3)]
    assert texts[1] == texts[2]  # the first only fills the cache


def test_stop_string_ends_the_reply(client: openai.OpenAI) -> None:
    story = [{"role": "user", "content": "Write a sentence about the sea."}]
    client.chat.completions.create(model=MODEL, messages=story, max_tokens=12, temperature=0)  # the cache
    free = client.chat.completions.create(model=MODEL, messages=story, max_tokens=12, temperature=0)
    text = free.choices[0].message.content
    words = text.split()
    word = words[len(words) // 2]  # a word from the middle of the greedy reply, whatever this CPU made it
    cut = client.chat.completions.create(model=MODEL, messages=story, max_tokens=12, temperature=0, stop=[word])
    assert cut.choices[0].message.content == text[:text.index(word)]
    assert cut.choices[0].finish_reason == "stop"


def test_json_object_mode_returns_a_json_object(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, max_tokens=40, temperature=0,
                                           response_format={"type": "json_object"},
                                           messages=[{"role": "user", "content": "Describe a cat as JSON."}])
    text = reply.choices[0].message.content
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: still a valid prefix of an object
        assert text.lstrip().startswith("{")


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "legs": {"type": "integer", "minimum": 0,
                                                                        "maximum": 8},
                   "kind": {"type": "string", "enum": ["mammal", "bird", "fish"]}},
    "required": ["name", "legs", "kind"],
    "additionalProperties": False,
}


def test_json_schema_output_validates_against_the_schema(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, max_tokens=200, temperature=0.7, seed=3,  # room to finish, whatever this CPU samples
        response_format={"type": "json_schema", "json_schema": {"name": "animal", "schema": SCHEMA}},
        messages=[{"role": "user", "content": "Describe a dog."}])
    assert reply.choices[0].finish_reason == "stop"
    data = json.loads(reply.choices[0].message.content)
    assert set(data) == {"name", "legs", "kind"}
    assert isinstance(data["name"], str) and len(data["name"]) <= 20
    assert isinstance(data["legs"], int) and 0 <= data["legs"] <= 8
    assert data["kind"] in ("mammal", "bird", "fish")


def test_text_completion_continues_the_prompt(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6,
                                      temperature=0)
    assert reply.choices[0].text
    assert reply.usage.completion_tokens <= 6
    echoed = client.completions.create(model=MODEL, prompt="One, two,", max_tokens=3, temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("One, two,")


def test_text_completion_streams(client: openai.OpenAI) -> None:
    client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0)  # the cache
    stream = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0,
                                       stream=True)
    text = "".join(c.choices[0].text for c in stream if c.choices)
    whole = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0)
    assert text == whole.choices[0].text


def test_embeddings_are_unit_vectors_and_similar_texts_are_closer(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model=MODEL, input=["I like cats.", "I love kittens.",
                                                          "Quarterly tax filing deadline"])
    vecs = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert len(vecs[0]) == 576
    for v in vecs:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3)
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2])
    assert result.usage.prompt_tokens > 0
    floats = client.embeddings.create(model=MODEL, input="I like cats.", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vecs[0], abs=1e-6)


def test_unknown_model_raises_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO, max_tokens=4)
    assert info.value.code == "model_not_found"


def test_wrong_token_raises_authentication_error(server: ApiServer) -> None:
    with openai.OpenAI(base_url=server.address + "/v1", api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
