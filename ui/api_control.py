"""Starts and stops the local API server off the GUI thread and reports its state as signals."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from PySide6.QtCore import QObject, Qt, Signal

from ui.background import Background


class ApiServerLike(Protocol):
    """What the tray needs from the API server (``app.api.server.ApiServer``)."""

    state: str
    address: str

    def start(self) -> Any: ...

    def stop(self) -> None: ...


class ApiControl(QObject):
    """Signals: ``stateChanged(running, address)`` and ``failed(message)``."""

    stateChanged = Signal(bool, str)
    failed = Signal(str)
    _state = Signal(str)

    def __init__(self, make_server: Callable[[Callable[[str], None]], ApiServerLike], background: Background,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._background = background
        self._state.connect(self._state_changed, Qt.ConnectionType.QueuedConnection)
        self.server = make_server(self._state.emit)

    @property
    def running(self) -> bool:
        """True while the server accepts requests."""
        return self.server.state == "running"

    def set_enabled(self, on: bool) -> None:
        """Start or stop the server (the answer comes as ``stateChanged`` or ``failed``)."""
        job = self.server.start if on else self.server.stop
        self._background.run(job, lambda _: self._emit(), self._failed)

    def stop_now(self) -> None:
        """Stop the server and wait for it (on quit)."""
        self.server.stop()

    def _failed(self, message: str) -> None:
        self.failed.emit(message)
        self._emit()

    def _state_changed(self, _state: str) -> None:
        self._emit()

    def _emit(self) -> None:
        self.stateChanged.emit(self.running, self.server.address)
