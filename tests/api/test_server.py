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


def _two_free_ports() -> tuple[int, int]:
    """Two distinct ports that were free a moment ago."""
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return a.getsockname()[1], b.getsockname()[1]


def _save_api_settings(core: Ember, **api: object) -> None:
    """Replace ``core.settings`` as the desktop's settings dialog does on Save (a new object, not a change)."""
    from app.settings import Settings

    core.settings = Settings.model_validate({**core.settings.model_dump(), "api": api})


def test_saved_settings_apply_at_once_or_when_the_api_is_started_again(core: Ember) -> None:
    first, second = _two_free_ports()
    _save_api_settings(core, port=first)
    server = ApiServer(core, token="k")  # as the desktop makes it: once, before any settings are saved
    auth = {"Authorization": "Bearer k"}
    with server:
        assert server.address == f"http://127.0.0.1:{first}"
        origin = {**auth, "Origin": "https://app.example"}
        assert httpx.get(server.address + "/v1/models", headers=origin).status_code == 403
        _save_api_settings(core, port=second, allowed_origins=["https://app.example"], max_queue=3)
        ok = httpx.get(server.address + "/v1/models", headers=origin)
        assert ok.status_code == 200, "a saved origin applies to the running server"
        assert httpx.get(server.address + "/health", headers=auth).json()["queue"]["max_queue"] == 3
        assert server.address == f"http://127.0.0.1:{first}", "the port changes only on a restart"
    server.start()  # the tray's "API on"
    try:
        assert server.address == f"http://127.0.0.1:{second}"
        assert httpx.get(server.address + "/v1/models", headers=auth).status_code == 200
    finally:
        server.stop()


def test_regenerating_in_the_settings_panel_applies_to_the_running_server(qtbot, core: Ember,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.secrets_panel import SecretsPanel

    monkeypatch.setattr("storage.secrets.available", lambda: False)
    monkeypatch.delenv("EMBER_SECRET_API_TOKEN", raising=False)
    with ApiServer(core, port=0) as server, ApiServer(core, port=0, token="given") as fixed:
        old = server.token.value
        panel = SecretsPanel(core.paths.home)
        qtbot.addWidget(panel)
        assert panel.api_token.text() == old
        panel.regenerate_api_token()
        new = panel.api_token.text()
        assert new != old and server.token.value == new
        url = server.address + "/v1/models"
        assert httpx.get(url, headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {new}"}).status_code == 200
        assert httpx.get(fixed.address + "/v1/models", headers={"Authorization": "Bearer given"}).status_code == 200
    with ApiServer(core, port=0) as again:  # a later start uses the stored, new token
        assert again.token.value == new


def test_port_in_use_fails_clearly_and_a_later_start_works(core: Ember) -> None:
    states: list[str] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = ApiServer(core, port=port, token="x", on_state=states.append)
        with pytest.raises(ApiServerError, match=f"Port {port} .* already in use"):
            server.start()
    assert server.state == "failed" and "already in use" in server.error
    with server:
        assert server.state == "running" and server.error is None
        assert httpx.get(server.address + "/v1/models", headers={"Authorization": "Bearer x"}).status_code == 200
    assert states == ["failed", "starting", "running", "stopped"]


@pytest.mark.allow_log_warnings  # the server thread's failure is logged
def test_server_thread_exiting_while_starting_is_a_failure_and_a_later_start_works(
        core: Ember, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    async def exit_like_uvicorn(self, sockets=None) -> None:
        sys.exit(3)  # what uvicorn does when its startup fails

    monkeypatch.setattr(uvicorn.Server, "startup", exit_like_uvicorn)
    server = ApiServer(core, port=0, token="x")
    with pytest.raises(ApiServerError, match="stopped while starting: uvicorn exited with code 3"):
        server.start()
    assert server.state == "failed" and "exited with code 3" in server.error
    monkeypatch.undo()
    with server:
        assert server.state == "running"
        assert httpx.get(server.address + "/v1/models", headers={"Authorization": "Bearer x"}).status_code == 200


def test_server_that_does_not_start_in_time_is_a_failure(core: Ember, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import uvicorn

    async def hang(self, sockets=None) -> None:
        while not self.should_exit:
            await asyncio.sleep(0.01)

    monkeypatch.setattr(uvicorn.Server, "startup", hang)
    server = ApiServer(core, port=0, token="x")
    with pytest.raises(ApiServerError, match="did not start on .* within 0.3 s"):
        server.start(timeout=0.3)
    assert server.state == "failed"
    monkeypatch.undo()
    with server:
        assert server.state == "running"


def test_a_shut_down_engine_is_a_503(core: Ember) -> None:
    core.engine.shutdown()
    with ApiServer(core, port=0, token="k") as server:
        response = httpx.post(server.address + "/v1/completions", headers={"Authorization": "Bearer k"},
                              json={"model": "default", "prompt": "Hello", "max_tokens": 2})
    assert response.status_code == 503, response.text
    assert response.json()["error"] == {"message": "The engine has been shut down.", "type": "server_busy",
                                        "param": None, "code": "engine_stopped"}


@pytest.mark.integration
def test_keep_alive_leaves_the_model_the_desktop_loaded(core: Ember) -> None:
    from app.settings import ApiSettings

    core.engine.load(core.model_spec("default")).wait(60)  # the chat window's model
    with ApiServer(core, settings=ApiSettings(port=0, keep_alive=1), token="k") as server:
        response = httpx.post(server.address + "/v1/completions", headers={"Authorization": "Bearer k"},
                              json={"model": "default", "prompt": "Hello", "max_tokens": 2}, timeout=60)
        assert response.status_code == 200
        time.sleep(3)  # the idle watch looks every second; keep_alive is 1 s
        assert core.engine.loaded is not None and core.engine.loaded.name == "smollm2-135m-instruct"
