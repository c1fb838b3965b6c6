"""The server object (start/stop/address/state), the stored token and ``ember serve``."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from app.api import ApiServer, ApiServerError
from app.api.token import load_token, regenerate_token
from app.core import Ember
from app.paths import Paths


@pytest.fixture
def core(ember_home: Path) -> Iterator[Ember]:
    c = Ember.open(Paths(ember_home))
    yield c
    c.close()


def test_token_is_created_once_in_a_private_file_without_keyring(ember_home: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("storage.secrets.available", lambda: False)
    monkeypatch.delenv("EMBER_SECRET_API_TOKEN", raising=False)
    first = load_token(ember_home)
    assert first.value.startswith("ember-") and len(first.value) > 40
    path = ember_home / "api-token"
    assert first.source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(ember_home) == first
    second = regenerate_token(ember_home)
    assert second.value != first.value and load_token(ember_home).value == second.value


def test_token_from_the_environment_wins(ember_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_SECRET_API_TOKEN", "from-env")
    assert load_token(ember_home).value == "from-env"
    assert not (ember_home / "api-token").exists()


def test_start_stop_state_and_address(core: Ember) -> None:
    states: list[str] = []
    server = ApiServer(core, port=0, token="abc", on_state=states.append)
    assert server.state == "stopped"
    server.start()
    try:
        assert server.state == "running"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.address) and server.port != 0
        response = httpx.get(server.address + "/v1/models", headers={"Authorization": "Bearer abc"})
        assert response.status_code == 200
    finally:
        server.stop()
    assert server.state == "stopped" and states == ["starting", "running", "stopped"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.address + "/health")
    server.stop()  # idempotent


def test_port_in_use_is_a_known_error(core: Ember) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ApiServerError, match=f"Port {port} .* already in use"):
            ApiServer(core, port=port, token="x").start()


def test_no_auth_is_refused_off_loopback(core: Ember) -> None:
    with pytest.raises(ApiServerError, match="loopback"):
        ApiServer(core, host="0.0.0.0", port=0, auth=False).start()


def test_no_auth_on_loopback_serves_without_a_token(core: Ember) -> None:
    with ApiServer(core, port=0, auth=False) as server:
        assert server.token is None
        assert httpx.get(server.address + "/v1/models").status_code == 200
        assert httpx.get(server.address + "/health").json()["auth"] is False


@pytest.mark.integration
def test_ember_serve_prints_address_and_token_and_stops_on_ctrl_c(ember_home: Path) -> None:
    env = {**os.environ, "EMBER_HOME": str(ember_home)}
    env.pop("EMBER_SECRET_API_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", "0"], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("Press Ctrl-C") for line in lines) and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        address = re.search(r"Ember API on (http://\S+)", text).group(1)
        token = re.search(r"API token \(.*\): (\S+)", text).group(1)
        stored = ember_home / "api-token"  # where the token lives on a machine without a keyring
        if stored.exists():
            assert token == stored.read_text().strip()
        assert httpx.get(address + "/v1/models").status_code == 401
        ok = httpx.get(address + "/v1/models", headers={"Authorization": f"Bearer {token}"})
        assert ok.json()["data"][0]["id"] == "smollm2-135m-instruct"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_out_of_range_port_is_a_settings_error(core: Ember) -> None:
    from app.settings import SettingsError

    with pytest.raises(SettingsError, match="port"):
        ApiServer(core, port=70000)


def test_regenerated_token_applies_to_the_running_server(core: Ember, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("storage.secrets.available", lambda: False)
    monkeypatch.delenv("EMBER_SECRET_API_TOKEN", raising=False)
    with ApiServer(core, port=0) as server:
        old = server.token.value
        new = server.regenerate_token().value
        assert new != old
        url = server.address + "/v1/models"
        assert httpx.get(url, headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {new}"}).status_code == 200


@pytest.mark.integration
def test_model_loaded_for_the_api_is_unloaded_after_the_keep_alive(core: Ember) -> None:
    from app.settings import ApiSettings

    with ApiServer(core, settings=ApiSettings(port=0, keep_alive=1), token="k") as server:
        response = httpx.post(server.address + "/v1/completions", headers={"Authorization": "Bearer k"},
                              json={"model": "default", "prompt": "Hello", "max_tokens": 2}, timeout=60)
        assert response.status_code == 200 and core.engine.loaded is not None
        deadline = time.monotonic() + 10
        while core.engine.loaded is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert core.engine.loaded is None
