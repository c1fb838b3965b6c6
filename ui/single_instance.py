"""One Ember per data root: a second start asks the running one to show its window, then exits.

The first instance listens on a local socket (QLocalServer) whose name is derived from the user and the data root
(``EMBER_HOME``), so tests and a second data root run side by side. A later start connects, sends ``activate`` and
leaves; the first instance emits :attr:`SingleInstance.activated`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

ACTIVATE = b"activate\n"


def server_name(home: Path) -> str:
    """The local socket name of the Ember using data root ``home`` (for this user)."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "")
    digest = hashlib.sha256(f"{user}\0{Path(home).expanduser().resolve()}".encode()).hexdigest()[:20]
    return f"ember-{digest}"


class SingleInstance(QObject):
    """Signal ``activated()``: another start of Ember on the same data root asked this one to show itself."""

    activated = Signal()

    def __init__(self, home: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(home)
        self._server: QLocalServer | None = None

    def claim(self, timeout_ms: int = 1000) -> bool:
        """True when this is the only Ember on the data root (it now listens); False when another one runs (it
        was asked to bring its window to the front). Blocks for at most about ``timeout_ms`` (at start-up)."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if socket.waitForConnected(timeout_ms):
            socket.write(ACTIVATE)
            socket.flush()
            socket.waitForBytesWritten(timeout_ms)
            socket.disconnectFromServer()
            return False
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            QLocalServer.removeServer(self.name)  # a socket file left behind by an Ember that crashed
            if not server.listen(self.name):
                log.info("single instance: cannot listen on %s (%s); running anyway", self.name,
                         server.errorString())
                return True
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def close(self) -> None:
        """Stop listening (on quit)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def _accept(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            conn = self._server.nextPendingConnection()
            conn.readyRead.connect(self._read)
            conn.disconnected.connect(conn.deleteLater)
            if conn.bytesAvailable():
                self._read(conn)

    def _read(self, conn: QLocalSocket | None = None) -> None:
        conn = conn or self.sender()
        if isinstance(conn, QLocalSocket) and bytes(conn.readAll().data()).startswith(ACTIVATE.strip()):
            self.activated.emit()
