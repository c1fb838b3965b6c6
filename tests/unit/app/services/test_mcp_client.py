"""The MCP hub against the real test server over stdio: tools, calls, tool errors, a server that dies mid-call
(restarted on the next use) and a call that times out; server lines from the settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.services.mcp_client import McpError, McpHub
from app.services.mcp_servers import McpServer, parse_server

SERVER = Path(__file__).resolve().parents[3] / "mcp_server.py"


@pytest.fixture
def hub():
    h = McpHub({"t": McpServer("t", sys.executable, (str(SERVER),))}, start_timeout=60, call_timeout=3)
    yield h
    h.close()


def test_tools_calls_errors_crash_and_timeout(hub):
    tools = hub.tools("t").result(60)
    assert [t.name for t in tools] == ["add", "read_note", "crash", "wait"]
    assert tools[0].parameters["properties"]["a"]["type"] == "integer"
    assert hub.call("t", "add", {"a": 2, "b": 3}).result(30).text == "5"
    missing = hub.call("t", "read_note", {"name": "nope"}).result(30)
    assert missing.is_error and "no note called 'nope'" in missing.text
    with pytest.raises(McpError, match="stopped during the call to crash"):
        hub.call("t", "crash", {"reason": "test"}).result(30)
    assert hub.call("t", "add", {"a": 1, "b": 1}).result(60).text == "2", "a dead server starts again"
    with pytest.raises(McpError, match="did not finish within 3 s"):
        hub.call("t", "wait", {"seconds": 30}).result(30)


def test_unknown_and_unstartable_servers_are_known_errors(tmp_path: Path):
    h = McpHub({"bad": McpServer("bad", str(tmp_path / "no-such-program"))}, start_timeout=30)
    try:
        with pytest.raises(McpError, match="could not be started"):
            h.tools("bad").result(30)
        with pytest.raises(McpError, match="no MCP server 'other'"):
            h.tools("other").result(30)
    finally:
        h.close()


def test_server_lines():
    s = parse_server("notes", "NOTES_DIR=/tmp/my\\ notes python -m notes_server --verbose")
    assert (s.command, s.args, s.env) == ("python", ("-m", "notes_server", "--verbose"), {"NOTES_DIR": "/tmp/my notes"})
    assert parse_server("web", "https://example.org/mcp").url == "https://example.org/mcp"
    for name, line in (("bad name", "python x.py"), ("x", "A=1"), ("x", "'unclosed")):
        with pytest.raises(ValueError):
            parse_server(name, line)
