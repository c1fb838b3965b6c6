"""MCP server declarations: one settings line per server, parsed into how to reach it."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


@dataclass(frozen=True)
class McpServer:
    """How to reach one MCP server: a stdio ``command`` with ``args`` and extra ``env``, or a streamable HTTP
    ``url``."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""

    @property
    def stdio(self) -> bool:
        """True when Ember starts the server itself and talks to it over stdin/stdout."""
        return not self.url

    def describe(self) -> str:
        """The server as the user declared it (for menus and messages)."""
        return self.url or shlex.join([self.command, *self.args])


def parse_server(name: str, spec: str) -> McpServer:
    """One server from its settings line: ``[NAME=value ...] command [args ...]`` or an ``http(s)://`` URL.

    Raises:
        ValueError: the name or the line cannot be used (the message says why).
    """
    if not NAME_RE.match(name):
        raise ValueError(f"MCP server name {name!r}: use 1-40 letters, digits, '_', '-' or '.'.")
    spec = spec.strip()
    if spec.startswith(("http://", "https://")):
        if any(c.isspace() for c in spec):
            raise ValueError(f"MCP server {name!r}: a URL has no spaces.")
        return McpServer(name=name, url=spec)
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise ValueError(f"MCP server {name!r}: the command line cannot be read ({exc}).") from None
    env: dict[str, str] = {}
    while words and _ENV_WORD.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    if not words:
        raise ValueError(f"MCP server {name!r}: give a command that starts it, or an http(s):// URL.")
    return McpServer(name=name, command=words[0], args=tuple(words[1:]), env=env)


def parse_servers(servers: dict[str, str]) -> dict[str, McpServer]:
    """Every declared server by name (see :func:`parse_server`)."""
    return {name: parse_server(name, spec) for name, spec in servers.items()}
