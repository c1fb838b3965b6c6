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
from app.api.token import ApiToken, load_token, regenerate_token
from app.core import Ember
from app.settings import ApiSettings, SettingsError, describe_validation
from storage.errors import EmberError

log = logging.getLogger(__name__)


class ApiServerError(EmberError, OSError):
    """The API server could not start (port in use, address not available, unsafe options)."""


class ApiServer:
    """The local HTTP API in a background thread.

    Args:
        core: the composition root (its engine, library and settings are used).
        settings: API settings (default: ``core.settings.api``); ``host``/``port``/``auth`` override them.
        token: the bearer token to require; default: the stored token (created on first start) when auth is on.
        on_state: called (from any thread) with the new state when it changes.
    """

    def __init__(self, core: Ember, *, settings: ApiSettings | None = None, host: str | None = None,
                 port: int | None = None, auth: bool | None = None, token: str | None = None,
                 on_state: Callable[[str], None] | None = None) -> None:
        base = settings or core.settings.api
        overrides = {k: v for k, v in {"host": host, "port": port, "auth": auth}.items() if v is not None}
        try:
            self.settings = ApiSettings.model_validate({**base.model_dump(), **overrides}) if overrides else base
        except ValidationError as exc:
            raise SettingsError(f"Invalid API option: {describe_validation(exc)}") from exc
        self.core = core
        self._token_value = token
        self._on_state = on_state
        self._state = "stopped"
        self.error: str | None = None
        self.token: ApiToken | None = None
        self.port: int | None = None
        self.context: ApiContext | None = None
        self._server: uvicorn.Server | None = None
        self._app = None
        self._thread: threading.Thread | None = None
        self._idle_stop = threading.Event()

    # -- public surface -----------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``stopped``, ``starting``, ``running`` or ``failed`` (then :attr:`error` says why)."""
        return self._state

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def address(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765`` (the real port once started)."""
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port if self.port is not None else self.settings.port}"

    def start(self, *, timeout: float = 15.0) -> "ApiServer":
        """Bind the port and start serving; returns when the server accepts connections.

        Raises:
            ApiServerError: the port is in use, the address cannot be bound, or ``--no-auth`` off loopback.
            SecretStoreError, StorageError: the token could not be read or created.
        """
        if self._state in ("starting", "running"):
            return self
        s = self.settings
        if not s.auth and not is_loopback(s.host):
            raise ApiServerError(f"Refusing to serve without a token on {s.host}: --no-auth is allowed only on a "
                                 "loopback address (127.0.0.1, ::1, localhost).")
        if s.auth:
            self.token = ApiToken(self._token_value, "given") if self._token_value else \
                load_token(self.core.paths.home)
        else:
            self.token = None
        sock = _bind(s.host, s.port)
        self.port = sock.getsockname()[1]
        self._set_state("starting")
        self.error = None
        scheduler = Scheduler(self.core.engine, s)
        self.context = ApiContext(core=self.core, settings=s, scheduler=scheduler,
                                  token=self.token.value if self.token else None)
        app = self._app = create_app(self.context, bound_host=s.host)
        config = uvicorn.Config(app, log_config=None, access_log=s.access_log, lifespan="off", http=NoDelayH11,
                                timeout_graceful_shutdown=3, timeout_keep_alive=5, server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="ember-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise ApiServerError(f"The API server did not start on {self.address}"
                                     + (f": {self.error}" if self.error else "."))
            time.sleep(0.01)
        self._set_state("running")
        self._idle_stop.clear()
        if s.keep_alive > 0:
            threading.Thread(target=self._idle_watch, name="ember-api-idle", daemon=True).start()
        log.info("API listening on %s (auth %s)", self.address, "on" if self.token else "off")
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Cancel the API's jobs, stop accepting requests and join the server thread (idempotent)."""
        self._idle_stop.set()
        if self._server is None or self._thread is None:
            self._set_state("stopped")
            return
        if self.context is not None:
            self.context.scheduler.cancel_all()
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._server = self._thread = None
        if self._state != "failed":
            self._set_state("stopped")
        log.info("API stopped")

    def regenerate_token(self) -> ApiToken:
        """Make and store a new token; a running server requires it from the next request on."""
        self.token = regenerate_token(self.core.paths.home)
        self._token_value = None
        if self._app is not None and self.settings.auth:
            self._app.state.guard.token = self.token.value
            assert self.context is not None
            self.context.token = self.token.value
        return self.token

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self) -> None:
        """Block until the server thread ends (``ember serve`` waits here until Ctrl-C)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # -- internals ----------------------------------------------------------------------------------------------

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except Exception as exc:  # a bug in the server itself: keep the traceback
            log.exception("the API server stopped with an error")
            self.error = str(exc)
            self._set_state("failed")
        finally:
            sock.close()

    def _idle_watch(self) -> None:
        """Unload a model the API loaded once no API request has used it for ``keep_alive`` seconds."""
        while not self._idle_stop.wait(1.0):
            ctx = self.context
            if ctx is None:
                return
            loaded = self.core.engine.loaded
            idle = time.monotonic() - ctx.scheduler.last_activity
            if (loaded is not None and loaded.name in ctx.api_models and ctx.scheduler.active == 0
                    and self.core.engine.pending == 0 and idle >= self.settings.keep_alive):
                ctx.api_models.discard(loaded.name)
                log.info("unloading %s after %.0f s without API requests", loaded.name, idle)
                self.core.engine.unload()

    def _set_state(self, state: str) -> None:
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
