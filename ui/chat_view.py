"""The conversation's messages, with the streaming reply repainted at most ~30 times a second."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QFrame, QScrollArea, QStackedWidget, QVBoxLayout, QWidget

from storage.conversations import Message, Version
from ui.empty_state import EmptyState
from ui.message_widget import MessageWidget

REPAINT_INTERVAL_MS = 33


class ChatView(QStackedWidget):
    """Shows messages (or the empty state). Feed it with :meth:`show_messages`, :meth:`begin_reply`,
    :meth:`append_text` and :meth:`finish_reply`.

    Signals: ``regenerateRequested()``, ``askLargeRequested(message_id)``, ``editSubmitted(message_id, text)``,
    ``versionRequested(message_id, step)``, ``openLibraryRequested()``.
    """

    regenerateRequested = Signal()
    askLargeRequested = Signal(int)
    editSubmitted = Signal(int, str)
    versionRequested = Signal(int, int)
    openLibraryRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty = EmptyState()
        self.empty.openLibraryRequested.connect(self.openLibraryRequested.emit)
        self._column = QWidget()
        self._list = QVBoxLayout(self._column)
        self._list.setContentsMargins(24, 16, 24, 16)
        self._list.setSpacing(10)
        self._list.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self._column)
        self.addWidget(self.empty)
        self.addWidget(self.scroll)
        self._widgets: list[MessageWidget] = []
        self._streaming: MessageWidget | None = None
        self._stream_text = ""
        self._pending = ""
        self._stick_to_bottom = True
        self.repaints = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REPAINT_INTERVAL_MS)
        self._timer.timeout.connect(self._flush)
        bar = self.scroll.verticalScrollBar()
        bar.valueChanged.connect(lambda v: setattr(self, "_stick_to_bottom", v >= bar.maximum() - 24))
        bar.rangeChanged.connect(lambda _lo, hi: bar.setValue(hi) if self._stick_to_bottom else None)

    @property
    def message_widgets(self) -> list[MessageWidget]:
        """The shown messages, oldest first."""
        return list(self._widgets)

    def show_messages(self, messages: list[Message], versions: dict[int, Version] | None = None) -> None:
        """Replace the shown conversation (``versions``: each message's place among its versions)."""
        self._timer.stop()
        self._streaming, self._pending, self._stream_text = None, "", ""
        for widget in self._widgets:
            self._list.removeWidget(widget)
            widget.deleteLater()
        self._widgets = []
        for message in messages:
            self._add(message)
        self.set_versions(versions or {})
        self._stick_to_bottom = True
        self._update_state()

    def set_versions(self, versions: dict[int, Version]) -> None:
        """Update the ‹ 2/3 › controls of the shown messages."""
        for widget in self._widgets:
            widget.set_version(versions.get(widget.message.id))

    def begin_reply(self, user: Message, reply: Message) -> None:
        """Show the sent message (unless it is shown already: a regenerated reply) and an empty reply that will
        stream."""
        if not self._widgets or self._widgets[-1].message.id != user.id:
            self._add(user)
        self._streaming = self._add(reply)
        self._stream_text, self._pending = "", ""
        self._stick_to_bottom = True
        self._update_state()

    def append_text(self, text: str) -> None:
        """More reply text; painted on the next coalescing tick."""
        if self._streaming is None:
            return
        self._pending += text
        if not self._timer.isActive():
            self._timer.start()

    def retract_reply(self, reason: str) -> None:
        """Withdraw the reply text shown so far (the text that follows replaces it)."""
        if self._streaming is None:
            return
        self._timer.stop()
        self._pending, self._stream_text = "", ""
        self._streaming.set_text("")
        self._streaming.setToolTip(reason)

    def finish_reply(self, message: Message) -> None:
        """The reply ended: final text and its stats footer."""
        widget = self._streaming
        if widget is None or widget.message.id != message.id:
            return
        self._timer.stop()
        self._flush()
        self._streaming = None
        widget.show_stats(message)
        self._update_state()

    @property
    def streaming_text(self) -> str:
        """The reply text painted so far."""
        return self._stream_text

    def _flush(self) -> None:
        if self._streaming is None or not self._pending:
            return
        self._stream_text += self._pending
        self._pending = ""
        self._streaming.set_text(self._stream_text)
        self.repaints += 1

    def _add(self, message: Message) -> MessageWidget:
        widget = MessageWidget(message)
        widget.regenerateRequested.connect(self.regenerateRequested.emit)
        widget.askLargeRequested.connect(self.askLargeRequested.emit)
        widget.editSubmitted.connect(self.editSubmitted.emit)
        widget.versionRequested.connect(self.versionRequested.emit)
        self._list.insertWidget(self._list.count() - 1, widget)
        self._widgets.append(widget)
        return widget

    def _update_state(self) -> None:
        self.setCurrentWidget(self.scroll if self._widgets else self.empty)
        last_reply = next((w for w in reversed(self._widgets) if not w.is_user), None)
        for widget in self._widgets:
            widget.set_last_reply(widget is last_reply and self._streaming is None)
