"""The API server object that ``ember serve`` and the tray drive: start, stop, address, state.

uvicorn runs in its own thread with its own event loop; every request becomes a job on the application's one
:class:`~inference.engine.EngineService`, shared with the chat window.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
import time
from typing import Callable

import uvicorn
from pydantic import ValidationError
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.api.app import create_app
from app.api.context import ApiContext
from app.api.jobs import Scheduler
from app.api.security import is_loopback
from app.api.token import ApiToken, load_token, regenerate_token, watch_regeneration
from app.core import Ember
from app.settings import ApiSettings, SettingsError, describe_validation
from storage.errors import EmberError

log = logging.getLogger(__name__)


class ApiServerError(EmberError, OSError):
    """The API server could not start (port in use, address not available, unsafe options)."""


class ApiServer:
    """The local HTTP API in a background thread.

    Settings are read when they are used: :meth:`start` binds the host and port in force then, and a running server
    applies every other saved setting (allowed hosts and origins, queue, timeout, body limit, keep-alive) to the next
    request. Saving settings replaces ``core.settings``, so stopping and starting the API (the tray) applies a new
    address or auth setting.

    Args:
        core: the composition root (its engine, library and settings are used).
        settings: fixed API settings (default: the live ``core.settings.api``); ``host``/``port``/``auth`` override
            either.
        token: the bearer token to require; default: the stored token (created on first start) when auth is on.
        on_state: called (from any thread) with the new state when it changes.

    Raises:
        SettingsError: an override is out of bounds.
    """

    def __init__(self, core: Ember, *, settings: ApiSettings | None = None, host: str | None = None,
                 port: int | None = None, auth: bool | None = None, token: str | None = None,
                 on_state: Callable[[str], None] | None = None) -> None:
        self.core = core
        self._given = settings
        self._overrides = {k: v for k, v in {"host": host, "port": port, "auth": auth}.items() if v is not None}
        self._base: ApiSettings | None = None
        self._resolved: ApiSettings | None = None
        self._token_value = token
        self._on_state = on_state
        self._state = "stopped"
        self.error: str | None = None
        self.token: ApiToken | None = None  # the one token a running server requires (None: auth off)
        self.port: int | None = None
        self._bound_host: str | None = None
        self.context: ApiContext | None = None
        self._server: uvicorn.Server | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._unwatch: Callable[[], None] | None = None
        self._idle_stop = threading.Event()
        self._resolve()  # an out-of-bounds override fails here, not at start

    # -- public surface -----------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``stopped``, ``starting``, ``running`` or ``failed`` (then :attr:`error` says why)."""
        return self._state

    @property
    def settings(self) -> ApiSettings:
        """The API settings in force: the given ones or the live ``core.settings.api``, with the overrides on top.

        The same object is returned until ``core.settings`` is replaced, so changing a field of it applies at once.
        """
        return self._resolve()

    @property
    def host(self) -> str:
        """The address served on (the last one after a stop; the configured one before the first start)."""
        return self._bound_host or self.settings.host

    @property
    def address(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765`` (the real port once started)."""
        host = self.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port if self.port is not None else self.settings.port}"

    def start(self, *, timeout: float = 15.0) -> "ApiServer":
        """Bind the port with the settings in force now and start serving; returns when the server accepts
        connections. After a failure the state is ``failed`` (:attr:`error` says why) and a later call tries again.

        Raises:
            ApiServerError: the port is in use, the address cannot be bound, ``--no-auth`` off loopback, or the
                server did not start within ``timeout`` seconds.
            SecretStoreError, StorageError: the token could not be read or created.
        """
        if self._state in ("starting", "running"):
            return self
        if self._server is not None:  # what is left of a server that failed while running
            self._halt(timeout=2.0)
        try:
            self._start(timeout)
        except BaseException as exc:
            self._halt(timeout=2.0)
            self._fail(str(exc))
            raise
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Cancel the API's jobs, stop accepting requests and join the server thread (idempotent)."""
        running = self._server is not None
        self._halt(timeout)
        if self._state != "failed":
            self._set_state("stopped")
        if running:
            log.info("API stopped")

    def regenerate_token(self) -> ApiToken:
        """Make and store a new token; a running server with auth on requires it from the next request on (also when
        it was started with a given token)."""
        self._token_value = None
        token = regenerate_token(self.core.paths.home)
        if self.token is not None:
            self.token = token
        return token

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self) -> None:
        """Block until the server thread ends (``ember serve`` waits here until Ctrl-C)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # -- internals ----------------------------------------------------------------------------------------------

    def _resolve(self) -> ApiSettings:
        """The settings in force, recomputed only when their base object changed.

        Raises:
            SettingsError: an override is out of bounds.
        """
        base = self._given or self.core.settings.api
        if base is not self._base or self._resolved is None:
            try:
                resolved = ApiSettings.model_validate({**base.model_dump(), **self._overrides}) \
                    if self._overrides else base
            except ValidationError as exc:
                raise SettingsError(f"Invalid API option: {describe_validation(exc)}") from exc
            self._resolved = resolved  # first: no thread pairs the new base with the old result
            self._base = base
        return self._resolved

    def _current_token(self) -> str | None:
        """The token requests must carry now (None: auth is off)."""
        token = self.token
        return token.value if token is not None else None

    def _start(self, timeout: float) -> None:
        """:meth:`start` without the clean-up on failure."""
        s = self.settings
        self.error = None
        self.port = self._bound_host = None  # the address shown is the configured one until bound
        if not s.auth and not is_loopback(s.host):
            raise ApiServerError(f"Refusing to serve without a token on {s.host}: --no-auth is allowed only on a "
                                 "loopback address (127.0.0.1, ::1, localhost).")
        if s.auth:
            self.token = ApiToken(self._token_value, "given") if self._token_value else \
                load_token(self.core.paths.home)
            self._unwatch = watch_regeneration(self.core.paths.home, self._token_replaced)
        else:
            self.token = None
        self._sock = _bind(s.host, s.port)
        self.port = self._sock.getsockname()[1]
        self._bound_host = s.host
        self._set_state("starting")
        scheduler = Scheduler(self.core.engine, self._resolve)
        self.context = ApiContext(core=self.core, live_settings=self._resolve, scheduler=scheduler)
        app = create_app(self.context, bound_host=s.host, token=self._current_token)
        config = uvicorn.Config(app, log_config=None, access_log=s.access_log, lifespan="off", http=NoDelayH11,
                                timeout_graceful_shutdown=3, timeout_keep_alive=5, server_header=False)
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(server, self._sock), name="ember-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise ApiServerError(f"The API server on {self.address} stopped while starting: "
                                     f"{self.error or 'no reason given'} (details are in Ember's log).")
            if time.monotonic() > deadline:
                raise ApiServerError(f"The API server did not start on {self.address} within {timeout:g} s.")
            time.sleep(0.01)
        self._set_state("running")
        self._idle_stop.clear()
        if s.keep_alive > 0:
            threading.Thread(target=self._idle_watch, name="ember-api-idle", daemon=True).start()
        log.info("API listening on %s (auth %s)", self.address, "on" if self.token else "off")

    def _halt(self, timeout: float) -> None:
        """Stop following token changes and the idle watch, cancel the API's jobs, end the server thread and close
        the socket."""
        self._idle_stop.set()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self.context is not None:
            self.context.scheduler.cancel_all()
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout)
                if self._thread.is_alive():
                    self._server.force_exit = True
                    self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def _fail(self, error: str) -> None:
        """Enter the ``failed`` state with ``error`` (once per failure)."""
        self.error = error
        if self._state != "failed":
            self._set_state("failed")

    def _token_replaced(self, token: ApiToken) -> None:
        """The stored token was regenerated (the settings panel): require the new one unless the token in use is
        not the stored one (given to the server, or from the environment, which wins over the store)."""
        current = self.token
        if current is not None and current.source not in ("given", "environment"):
            self.token = token

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        """The server thread: serve until told to stop; any failure (uvicorn exits with SystemExit) is recorded."""
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # noqa: BLE001 - uvicorn calls sys.exit on a startup failure
            log.error("the API server stopped with an error", exc_info=exc)
            self._fail(f"uvicorn exited with code {exc.code}" if isinstance(exc, SystemExit) else
                       str(exc) or type(exc).__name__)
        finally:
            sock.close()

    def _idle_watch(self) -> None:
        """Unload a model the API loaded once no API request has used it for ``keep_alive`` seconds."""
        while not self._idle_stop.wait(1.0):
            ctx = self.context
            if ctx is None:
                return
            loaded = self.core.engine.loaded
            if ctx.scheduler.active == 0:  # a model the API loaded once and was replaced since is not the API's
                ctx.api_models.intersection_update({loaded.name} if loaded is not None else set())
            idle = time.monotonic() - ctx.scheduler.last_activity
            if (loaded is not None and loaded.name in ctx.api_models and ctx.scheduler.active == 0
                    and self.core.engine.pending == 0 and idle >= self.settings.keep_alive):
                ctx.api_models.discard(loaded.name)
                log.info("unloading %s after %.0f s without API requests", loaded.name, idle)
                self.core.engine.unload()

    def _set_state(self, state: str) -> None:
        """Record ``state`` and tell ``on_state``."""
        self._state = state
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("API state callback failed")


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, with a clear message when that is impossible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ApiServerError(f"The API address {host!r} cannot be resolved ({exc}).") from exc
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ApiServerError(f"Port {port} on {host} is already in use (another Ember, Ollama or server?). "
                                 "Stop it or choose another port with --port.") from exc
        raise ApiServerError(f"The API cannot listen on {host}:{port} ({exc.strerror or exc}).") from exc
    return sock


class NoDelayH11(H11Protocol):
    """uvicorn's HTTP protocol with Nagle's algorithm off.

    A stream is many small writes; with Nagle on, each one after the first waits for the client's delayed ACK
    (about 40 ms on Linux), which showed as 40-50 ms of extra time to first token.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
