"""Where the user types: Enter sends, Shift+Enter adds a line, the button turns into Stop while a reply runs."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QToolButton, QWidget


class _Input(QPlainTextEdit):
    submitted = Signal()
    filesGiven = Signal(list)  # local files pasted or dropped: attach them instead of inserting their paths

    def canInsertFromMimeData(self, source: QMimeData) -> bool:  # noqa: N802 - Qt override
        return bool(_local_files(source)) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802 - Qt override
        files = _local_files(source)
        if files:
            self.filesGiven.emit(files)
            return
        super().insertFromMimeData(source)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


def _local_files(source: QMimeData) -> list[str]:
    """The local files a paste or drop carries (none when it carries text or remote URLs)."""
    if not source.hasUrls():
        return []
    files = [u.toLocalFile() for u in source.urls() if u.isLocalFile()]
    return files if files and len(files) == len(source.urls()) else []


class Composer(QWidget):
    """The message box. Signals: ``sendRequested(text)``, ``stopRequested()``, ``settingsRequested()``,
    ``filesGiven(paths)`` (files pasted or dropped onto the box)."""

    sendRequested = Signal(str)
    filesGiven = Signal(list)
    stopRequested = Signal()
    settingsRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.input = _Input()
        self.input.setAccessibleName("Message")
        self.input.setPlaceholderText("Message Ember… (Enter sends, Shift+Enter for a new line)")
        self.input.setFixedHeight(72)
        self.input.setTabChangesFocus(True)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.setMinimumWidth(80)
        self.settings_button = QToolButton(text="⚙")
        self.settings_button.setToolTip("System prompt and sampling for this conversation")
        self.settings_button.setAutoRaise(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 6, 16, 12)
        layout.addWidget(self.settings_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addWidget(self.input, 1)
        layout.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        self._busy = False
        self.input.submitted.connect(self.submit)
        self.input.filesGiven.connect(self.filesGiven.emit)
        self.send_button.clicked.connect(self._button)
        self.settings_button.clicked.connect(self.settingsRequested.emit)

    def set_busy(self, busy: bool) -> None:
        """While a reply runs the button stops it."""
        self._busy = busy
        self.send_button.setText("Stop" if busy else "Send")
        self.send_button.setToolTip("Stop the reply (Esc)" if busy else "Send (Enter)")

    def submit(self) -> None:
        """Send the typed text (ignored while a reply runs)."""
        text = self.input.toPlainText().strip()
        if self._busy or not text:
            return
        self.input.clear()
        self.sendRequested.emit(text)

    def _button(self) -> None:
        if self._busy:
            self.stopRequested.emit()
        else:
            self.submit()
