"""The remote tier against a minimal local OpenAI-compatible server: streaming, retries, and every way it fails."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from inference.remote_tier import RemoteEndpoint, RemoteTierError, remote_chat, remote_models
from inference.sampling import SamplingOptions

OPTS = SamplingOptions(temperature=0.0, max_tokens=16)
MSGS = [{"role": "user", "content": "hi"}]


class Stub:
    """What the stub server does next: a list of modes consumed per chat request."""

    def __init__(self) -> None:
        self.modes: list[str] = []
        self.requests: list[dict] = []
        self.auth: list[str | None] = []


def _handler(stub: Stub):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": "big-model", "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            stub.requests.append(json.loads(self.rfile.read(n)))
            stub.auth.append(self.headers.get("Authorization"))
            mode = stub.modes.pop(0) if stub.modes else "ok"
            if mode == "500":
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "401":
                body = json.dumps({"error": {"message": "bad key"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if mode == "slow":
                time.sleep(2.0)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            if mode == "garbage":
                self.wfile.write(b"data: this is not json\n\n")
                return
            for piece in ["Hello", " there"]:
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
            self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())

    return H


@pytest.fixture
def server() -> Iterator[tuple[str, Stub]]:
    stub = Stub()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", stub
    httpd.shutdown()
    httpd.server_close()


def test_streams_text_with_the_key_and_discovers_the_model(server):
    url, stub = server
    got: list[str] = []
    ep = RemoteEndpoint(url, api_key="k123")
    assert remote_models(ep) == ["big-model"]
    res = remote_chat(ep, MSGS, OPTS, on_text=got.append)
    assert got == ["Hello", " there"] and res.text == "Hello there"
    assert res.stats.completion_tokens == 2 and res.stats.prompt_tokens == 5
    assert stub.requests[0]["model"] == "big-model" and stub.requests[0]["stream"] is True
    assert stub.auth[0] == "Bearer k123"


def test_retries_a_server_error_before_any_text(server):
    url, stub = server
    stub.modes = ["500", "ok"]
    res = remote_chat(RemoteEndpoint(url, model="m", retries=1), MSGS, OPTS, on_text=lambda t: None)
    assert res.text == "Hello there" and len(stub.requests) == 2


def test_errors_are_clear(server):
    url, stub = server
    stub.modes = ["500", "500"]
    with pytest.raises(RemoteTierError, match="HTTP 500.*2 attempts"):
        remote_chat(RemoteEndpoint(url, model="m", retries=1), MSGS, OPTS, on_text=lambda t: None)
    stub.modes = ["401"]
    with pytest.raises(RemoteTierError, match="bad key.*API key"):
        remote_chat(RemoteEndpoint(url, model="m"), MSGS, OPTS, on_text=lambda t: None)
    stub.modes = ["garbage"]
    with pytest.raises(RemoteTierError, match="not an OpenAI-compatible reply"):
        remote_chat(RemoteEndpoint(url, model="m"), MSGS, OPTS, on_text=lambda t: None)


def test_a_slow_server_times_out_quickly(server):
    url, stub = server
    stub.modes = ["slow"]
    t0 = time.monotonic()
    with pytest.raises(RemoteTierError, match="did not answer in time"):
        remote_chat(RemoteEndpoint(url, model="m", read_timeout=0.3, retries=0), MSGS, OPTS,
                    on_text=lambda t: None)
    assert time.monotonic() - t0 < 1.5


def test_an_unreachable_server_is_reported():
    with pytest.raises(RemoteTierError, match="cannot connect"):
        remote_chat(RemoteEndpoint("http://127.0.0.1:9/v1", model="m", retries=0, connect_timeout=1), MSGS, OPTS,
                    on_text=lambda t: None)
