"""Engine callbacks (called on the engine thread) turned into queued Qt signals delivered on the GUI thread."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal

from inference.events import EngineEvent


class EventRelay(QObject):
    """Carries ``(tag, event)`` pairs from any thread to a slot on the GUI thread.

    Create it on the GUI thread, connect :attr:`event`, and hand :meth:`callback` to the engine as ``on_event``.
    The tag tells the receiver which job an event belongs to, so events of a job it has moved on from are ignored.
    """

    event = Signal(int, object)

    def __init__(self, slot: Callable[[int, Any], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.event.connect(slot, Qt.ConnectionType.QueuedConnection)

    def callback(self, tag: int) -> Callable[[EngineEvent], None]:
        """A thread-safe ``on_event`` callback that re-emits every event with ``tag``."""

        def emit(event: EngineEvent) -> None:
            self.event.emit(tag, event)

        return emit
