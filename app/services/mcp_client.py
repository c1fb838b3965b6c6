"""MCP clients on their own asyncio thread: Ember starts stdio servers itself (or connects to streamable HTTP
ones), lists their tools and runs calls, never on the caller's thread.

Every public method returns a :class:`concurrent.futures.Future` at once; the GUI turns its completion into a
queued signal. A server that cannot start, times out or dies mid-call ends the future with :class:`McpError`
(a known error whose message says which server and what happened); the next use starts the server again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Coroutine, Mapping

from app.services.mcp_servers import McpServer
from storage.errors import EmberError

log = logging.getLogger(__name__)


class McpError(EmberError, RuntimeError):
    """An MCP server could not start, did not answer in time, or stopped."""


@dataclass(frozen=True)
class McpTool:
    """One tool a server offers: its name, description and JSON schema of its arguments."""

    server: str
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call gave back: its text, and whether the tool reported an error."""

    text: str
    is_error: bool = False


class _Connection:
    """One running server: a task that holds the MCP client open until :meth:`stop`."""

    def __init__(self, server: McpServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.client: Any = None
        self.ready: asyncio.Future[list[McpTool]] = loop.create_future()
        self.closed = asyncio.Event()
        self.dead = False  # the server stopped answering: the next use starts a new connection
        self._stop = asyncio.Event()
        self.task = loop.create_task(self._run())

    def _target(self) -> Any:
        from mcp.client.stdio import StdioServerParameters

        if self.server.url:
            return self.server.url
        return StdioServerParameters(command=self.server.command, args=list(self.server.args),
                                     env=dict(self.server.env) or None)

    async def _run(self) -> None:
        from mcp import Client

        try:
            async with Client(self._target()) as client:
                self.client = client
                listed = await client.list_tools()
                tools = [McpTool(self.server.name, t.name, t.description or "",
                                 dict(t.input_schema or {"type": "object"})) for t in listed.tools]
                if not self.ready.done():
                    self.ready.set_result(tools)
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - any failure of the server ends this connection
            if not self.ready.done():
                self.ready.set_exception(McpError(f"The MCP server {self.server.name!r} could not be started "
                                                  f"({_reason(exc)}). Check its command in Settings > Tools."))
            log.info("MCP server %s ended: %s", self.server.name, _reason(exc))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self.client = None
            self.closed.set()

    def stop(self) -> None:
        self.dead = True
        self._stop.set()


class McpHub:
    """The MCP servers declared in the settings, started on first use on one background asyncio thread."""

    def __init__(self, servers: Mapping[str, McpServer], *, start_timeout: float = 30.0,
                 call_timeout: float = 60.0) -> None:
        self.servers = dict(servers)
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self._loop: asyncio.AbstractEventLoop | None = None  # started on first use
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._connections: dict[str, _Connection] = {}
        self._closed = False

    # -- public, any thread --------------------------------------------------------------------------------------

    def tools(self, name: str) -> "concurrent.futures.Future[list[McpTool]]":
        """The tools of server ``name``, starting it if it is not running."""
        return self._submit(self._tools(name))

    def call(self, name: str, tool: str, arguments: Mapping[str, Any]) -> "concurrent.futures.Future[ToolOutcome]":
        """Run ``tool`` on server ``name`` with ``arguments`` (the server is started if needed)."""
        return self._submit(self._call(name, tool, dict(arguments)))

    def stop(self, name: str) -> "concurrent.futures.Future[None]":
        """Stop server ``name`` (a stdio server's process ends)."""
        return self._submit(self._stop_one(name))

    def running(self) -> list[str]:
        """Names of the servers connected now."""
        return [n for n, c in list(self._connections.items()) if c.client is not None]

    def close(self, timeout: float = 5.0) -> None:
        """Stop every server and the thread (on quit)."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop_all(), loop).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            log.info("MCP servers did not stop in time: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    # -- loop side -----------------------------------------------------------------------------------------------

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> "concurrent.futures.Future[Any]":
        with self._start_lock:
            if self._closed:
                coro.close()
                future: concurrent.futures.Future[Any] = concurrent.futures.Future()
                future.set_exception(McpError("Ember is shutting down: MCP servers are stopped."))
                return future
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="ember-mcp", daemon=True)
                self._thread.start()
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _server(self, name: str) -> McpServer:
        server = self.servers.get(name)
        if server is None:
            raise McpError(f"There is no MCP server {name!r} in Settings > Tools.")
        return server

    async def _connection(self, name: str) -> _Connection:
        conn = self._connections.get(name)
        if conn is None or conn.dead or conn.closed.is_set():
            conn = self._connections[name] = _Connection(self._server(name), asyncio.get_running_loop())
        try:
            await asyncio.wait_for(asyncio.shield(conn.ready), self.start_timeout)
        except asyncio.TimeoutError:
            conn.stop()
            raise McpError(f"The MCP server {name!r} did not start within {self.start_timeout:g} s.") from None
        return conn

    async def _tools(self, name: str) -> list[McpTool]:
        conn = await self._connection(name)
        return list(conn.ready.result())

    async def _call(self, name: str, tool: str, arguments: dict[str, Any]) -> ToolOutcome:
        conn = await self._connection(name)
        client = conn.client
        if client is None:
            raise McpError(f"The MCP server {name!r} stopped before the call could run.")
        call = asyncio.ensure_future(client.call_tool(tool, arguments))
        closed = asyncio.ensure_future(conn.closed.wait())
        try:
            done, _ = await asyncio.wait({call, closed}, timeout=self.call_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if call in done:
            try:
                result = call.result()
            except Exception as exc:  # noqa: BLE001 - the SDK's errors (connection closed, protocol errors)
                if conn.closed.is_set() or "closed" in str(exc).lower():
                    conn.stop()
                    raise McpError(f"The MCP server {name!r} stopped during the call to {tool} "
                                   f"({_reason(exc)}).") from None
                raise McpError(f"The MCP server {name!r} failed the call to {tool}: {_reason(exc)}") from None
            return _outcome(result)
        call.cancel()
        conn.stop()
        if conn.closed.is_set():
            raise McpError(f"The MCP server {name!r} stopped during the call to {tool}.")  # a server that does not answer is restarted on the next use
        raise McpError(f"The call to {tool} on the MCP server {name!r} did not finish within "
                       f"{self.call_timeout:g} s; the server was stopped.")

    async def _stop_one(self, name: str) -> None:
        conn = self._connections.pop(name, None)
        if conn is not None:
            conn.stop()
            try:
                await asyncio.wait_for(conn.task, 10)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - stopping must not fail
                conn.task.cancel()

    async def _stop_all(self) -> None:
        await asyncio.gather(*(self._stop_one(n) for n in list(self._connections)), return_exceptions=True)


def _outcome(result: Any) -> ToolOutcome:
    """A call result's content as text (structured content as JSON when there is no text)."""
    parts = []
    for item in getattr(result, "content", None) or []:
        text = getattr(item, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(item, 'type', 'content')}]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return ToolOutcome("\n".join(parts), bool(getattr(result, "is_error", False)))


def _reason(exc: BaseException) -> str:
    """A short reason from an exception (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__
