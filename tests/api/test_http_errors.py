"""Security and error handling, spoken to with plain httpx: every refusal is JSON with the right status."""

from __future__ import annotations

import httpx
import pytest

from app.api import ApiServer
from storage.errors import StorageError
from storage.secrets import SecretStoreError
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.integration

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return body["error"]


def test_request_without_token_is_refused_with_401(server: ApiServer) -> None:
    response = httpx.post(server.address + "/v1/chat/completions", json=CHAT)
    err = openai_error(response, 401)
    assert err["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"
    openai_error(httpx.get(server.address + "/v1/models", headers={"Authorization": "Bearer nope"}), 401)
    openai_error(httpx.get(server.address + "/v1/models", headers={"Authorization": TOKEN}), 401)


def test_health_without_the_token_says_only_that_ember_is_up(server: ApiServer) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"x-api-key": "nope"}):
        response = httpx.get(server.address + "/health", headers=headers)
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        assert str(server.core.library.get("default").path) not in response.text
    assert httpx.get(server.address + "/health", headers={"x-api-key": TOKEN}).json()["auth"] is True


def test_health_with_the_token_reports_the_models_and_the_queue(server: ApiServer) -> None:
    health = httpx.get(server.address + "/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert health["status"] == "ok" and health["auth"] is True
    assert health["model"] == "smollm2-135m-instruct"
    assert health["queue"]["max_queue"] == server.settings.max_queue
    # each model by slot, with where its layers run and what its weights and KV cache take (SmolLM2-135M: 30
    # layers, 3 KV heads of 64 of its 576 dimensions; K and V in f16 for every cell of the context)
    chat = health["models"][0]
    assert chat["slot"] == "chat" and chat["name"] == "smollm2-135m-instruct" and chat["layers"] == 30
    assert chat["kv_bytes"] == 2 * chat["n_ctx"] * 30 * 192 * 2 and chat["weights_bytes"] > 50_000_000
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        assert 0 <= chat["gpu_layers"] <= 30
    else:
        assert chat["gpu_layers"] == 0


@pytest.mark.parametrize("host", ["evil.example", "attacker.com:8765", "192.168.1.20"])
def test_foreign_host_header_is_refused(http: httpx.Client, host: str) -> None:
    err = openai_error(http.get("/v1/models", headers={"Host": host}), 403)
    assert err["code"] == "invalid_host"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:9", "[::1]:8765", "LOCALHOST:1"])
def test_loopback_host_headers_are_accepted(http: httpx.Client, host: str) -> None:
    assert http.get("/v1/models", headers={"Host": host}).status_code == 200


def test_configured_host_is_accepted(http: httpx.Client, settings) -> None:
    settings.allowed_hosts = ["ember.lan"]
    assert http.get("/v1/models", headers={"Host": "ember.lan:8765"}).status_code == 200


def test_cors_is_closed_unless_the_origin_is_configured(http: httpx.Client, settings) -> None:
    err = openai_error(http.get("/v1/models", headers={"Origin": "https://evil.example"}), 403)
    assert err["code"] == "origin_not_allowed"
    settings.allowed_origins = ["https://app.example"]
    ok = http.get("/v1/models", headers={"Origin": "https://app.example"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
    pre = httpx.options(http.base_url.join("/v1/chat/completions"),
                        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "authorization, content-type"})
    assert pre.status_code == 204 and "POST" in pre.headers["access-control-allow-methods"]


def test_malformed_json_is_a_400(http: httpx.Client) -> None:
    err = openai_error(http.post("/v1/chat/completions", content=b"{not json",
                                 headers={"Content-Type": "application/json"}), 400)
    assert err["code"] == "invalid_json"


@pytest.mark.parametrize("body, param", [
    ({"model": "default"}, "messages"),
    ({"model": "default", "messages": []}, "messages"),
    ({"model": "default", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({**CHAT, "temperature": "hot"}, "temperature"),
    ({**CHAT, "max_tokens": 0}, "max_tokens"),
    ({**CHAT, "seed": -5}, "seed"),
    ({**CHAT, "n": 3}, "n"),
    ({**CHAT, "tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools"),
    ({**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
     "tools"),
    ({**CHAT, "tool_choice": "required"}, "tool_choice"),
    ({**CHAT, "top_logprobs": 3}, "top_logprobs"),
    ({**CHAT, "response_format": {"type": "json_schema"}}, "response_format"),
    ({**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages.0.content"),
])
def test_invalid_fields_are_400_naming_the_field(http: httpx.Client, body: dict, param: str) -> None:
    err = openai_error(http.post("/v1/chat/completions", json=body), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error"


def test_non_object_body_is_a_400(http: httpx.Client) -> None:
    openai_error(http.post("/v1/chat/completions", json=[1, 2]), 400)
    openai_error(http.post("/v1/embeddings", json={"model": "default", "input": []}), 400)


def test_unknown_model_is_a_404(http: httpx.Client) -> None:
    err = openai_error(http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"}), 404)
    assert err["code"] == "model_not_found" and "smollm2-135m-instruct" in err["message"]
    ollama = http.post("/api/chat", json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})
    assert ollama.status_code == 404 and isinstance(ollama.json()["error"], str)


def test_model_paths_are_not_accepted(http: httpx.Client, server: ApiServer) -> None:
    path = str(server.core.library.get("default").path)
    openai_error(http.post("/v1/chat/completions", json={**CHAT, "model": path}), 404)


def test_unknown_route_and_method(http: httpx.Client) -> None:
    openai_error(http.get("/v2/nothing"), 404)
    openai_error(http.delete("/v1/models"), 405)


def test_oversized_body_is_a_413(http: httpx.Client, settings) -> None:
    settings.max_body_bytes = 4096
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 10_000}]}
    assert openai_error(http.post("/v1/chat/completions", json=big), 413)["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b" " * 1024

    openai_error(http.post("/v1/chat/completions", content=chunks(),
                           headers={"Content-Type": "application/json"}), 413)


def test_openapi_schema_is_served(server: ApiServer) -> None:
    schema = httpx.get(server.address + "/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/api/chat",
                 "/api/generate", "/api/tags", "/health"):
        assert path in schema["paths"]


def test_openapi_document_says_what_the_server_answers(server: ApiServer) -> None:
    doc = httpx.get(server.address + "/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"][
            "description"]}
    error_bodies = {"/v1/chat/completions": "OpenAIError", "/v1/messages": "AnthropicError",
                    "/api/chat": "OllamaError"}
    streams = {"/v1/chat/completions": "text/event-stream", "/v1/completions": "text/event-stream",
               "/v1/responses": "text/event-stream", "/v1/messages": "text/event-stream",
               "/api/chat": "application/x-ndjson", "/api/generate": "application/x-ndjson"}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert "422" not in op["responses"], f"{method} {path}"  # validation errors are 400s
            if path == "/health":
                assert {} in op["security"]  # the token is optional there: without it, only "ok"
                continue
            assert op["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}], f"{method} {path}"
            assert {"401", "403"} <= set(op["responses"])
            if method == "post":
                assert {"400", "404", "413", "503", "504"} <= set(op["responses"]), f"{method} {path}"
            if path in error_bodies:
                ref = op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/" + error_bodies[path])
            if path in streams:
                assert streams[path] in op["responses"]["200"]["content"]
    chat = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert chat["n"]["anyOf"][0] == {"const": 1}
    prompt = doc["components"]["schemas"]["CompletionRequest"]["properties"]["prompt"]
    assert prompt["anyOf"][0]["minLength"] == 1
    generate = doc["components"]["schemas"]["OllamaGenerateRequest"]["properties"]
    assert generate["images"]["anyOf"][0]["maxItems"] == 0 and generate["suffix"]["anyOf"][0]["maxLength"] == 0


@pytest.mark.parametrize("error, code", [
    (StorageError("Ember's database cannot be read (disk I/O error)."), "storage_error"),
    (SecretStoreError("The system keyring refused to read a secret."), "secret_store_error"),
])
def test_ember_failing_itself_is_a_500_with_its_message(http: httpx.Client, server: ApiServer,
                                                        monkeypatch: pytest.MonkeyPatch, error: Exception,
                                                        code: str) -> None:
    def broken() -> list:
        raise error

    monkeypatch.setattr(server.core.library, "list", broken)
    err = openai_error(http.get("/v1/models"), 500)
    assert err == {"message": str(error), "type": "server_error", "param": None, "code": code}
    ollama = http.get("/api/tags")
    assert ollama.status_code == 500 and ollama.json() == {"error": str(error)}


@pytest.mark.allow_log_warnings
def test_a_bug_is_a_500_with_the_apology_every_front_end_shows(http: httpx.Client, server: ApiServer,
                                                              monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def broken() -> list:
        raise KeyError("models")

    monkeypatch.setattr(server.core.library, "list", broken)
    err = openai_error(http.get("/v1/models"), 500)
    assert err["code"] == "internal_error" and err["message"] == (
        "Something went wrong inside Ember (KeyError). This is a bug; the details are in "
        f"{server.core.paths.logs / 'ember.log'}.")
    assert any(r.exc_info and r.getMessage() == "bug while serving GET /v1/models" for r in caplog.records)


def test_web_pages_may_read_every_x_ember_header(http: httpx.Client, settings) -> None:
    settings.allowed_origins = ["https://app.example"]
    response = http.post("/v1/completions", headers={"Origin": "https://app.example"},
                         json={"model": "default", "prompt": "Hello", "max_tokens": 2})
    assert response.status_code == 200
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    sent = {h.lower() for h in response.headers if h.lower().startswith("x-ember-")}
    assert len(sent) >= 9 and sent <= exposed, f"not exposed to web pages: {sorted(sent - exposed)}"
    assert "x-ember-route" in exposed  # routed chat replies send it
