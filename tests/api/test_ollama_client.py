"""The real ``ollama`` client against Ember's Ollama-compatible routes."""

from __future__ import annotations

import json
from typing import Iterator

import ollama
import pytest

from app.api import ApiServer
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.integration

MODEL = "default"
OPTIONS = {"temperature": 0, "num_predict": 8}


@pytest.fixture
def client(server: ApiServer) -> Iterator[ollama.Client]:
    c = ollama.Client(host=server.address, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    yield c
    c.close()


def test_tags_lists_library_models_with_details(client: ollama.Client) -> None:
    models = client.list().models
    assert [m.model for m in models] == ["smollm2-135m-instruct"]
    assert models[0].details.format == "gguf"
    assert models[0].details.quantization_level == "Q4_1"
    assert models[0].size > 10_000_000


def test_chat_non_streaming(client: ollama.Client) -> None:
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "Say hello."}], options=OPTIONS)
    assert reply.done and reply.message.role == "assistant" and reply.message.content
    assert 1 <= reply.eval_count <= 8 and reply.prompt_eval_count > 5
    assert reply.done_reason in ("stop", "length")


def test_chat_streaming_matches_non_streaming(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Name a fruit."}]
    client.chat(model=MODEL, messages=messages, options=OPTIONS)  # the cache: both below evaluate alike
    whole = client.chat(model=MODEL, messages=messages, options=OPTIONS)
    parts = list(client.chat(model=MODEL, messages=messages, options=OPTIONS, stream=True))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content for p in parts) == whole.message.content


def test_generate_streams_ndjson(client: ollama.Client) -> None:
    parts = list(client.generate(model=MODEL, prompt="Why is the sky blue?", options=OPTIONS, stream=True))
    assert parts[-1].done and 1 <= parts[-1].eval_count <= 8
    assert "".join(p.response for p in parts).strip()


def test_generate_raw_continues_the_prompt(client: ollama.Client) -> None:
    raw = client.generate(model=MODEL, prompt="Once upon a time", raw=True, options=OPTIONS)
    assert raw.done and raw.response


def test_chat_with_json_format(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "Is water wet?"}], format=schema,
                        options={"temperature": 0, "num_predict": 30})
    assert isinstance(json.loads(reply.message.content)["ok"], bool)


def test_empty_generate_loads_the_model(client: ollama.Client) -> None:
    reply = client.generate(model=MODEL, prompt="")
    assert reply.done and reply.done_reason == "load"


def test_unknown_model_is_a_404_response_error(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 404
    assert "no-such-model" in info.value.error


def test_embed(client: ollama.Client) -> None:
    result = client.embed(model=MODEL, input=["hello", "world"])
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) == 576


def test_version(client: ollama.Client, server: ApiServer) -> None:
    import httpx

    version = httpx.get(server.address + "/api/version", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert version["version"] and version["ember"]
