"""A small MCP server for the tests, run over stdio: ``python tests/mcp_server.py``.

Tools: ``add`` (two integers), ``read_note`` (a note by name from ``EMBER_TEST_NOTES``, a JSON object, or the
built-in notes), ``crash`` (the process exits mid-call) and ``wait`` (sleeps, for timeouts). When
``EMBER_TEST_CALLS`` names a file, every call appends its tool's name to it (tests see what really ran).
"""

from __future__ import annotations

import json
import os
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

NOTES = {"shopping": "eggs, flour, milk", "meeting": "Thursday at 10:00 in room 4"}

server = MCPServer("ember-test-tools", log_level="ERROR")


def _ran(tool: str) -> None:
    log = os.environ.get("EMBER_TEST_CALLS")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(tool + "\n")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    _ran("add")
    return a + b


@server.tool()
def read_note(name: str) -> str:
    """Read the note with this name."""
    _ran("read_note")
    notes = {**NOTES, **json.loads(os.environ.get("EMBER_TEST_NOTES") or "{}")}
    if name not in notes:
        raise ToolError(f"There is no note called {name!r}.")
    return notes[name]


@server.tool()
def crash(reason: str) -> str:
    """Stop the server in the middle of the call (tests a server that dies)."""
    _ran("crash")
    os._exit(3)


@server.tool()
def wait(seconds: int) -> str:
    """Sleep for this many seconds, then answer (tests timeouts)."""
    _ran("wait")
    time.sleep(seconds)
    return "done"


if __name__ == "__main__":
    server.run("stdio")
