"""The ‹ 2/3 › control under a message that has several versions (edits or regenerated replies)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from storage.conversations import Version


class VersionSwitcher(QWidget):
    """Shows which version of a message is shown and steps to the one before or after.

    Hidden while the message has a single version. Signal: ``stepped(step)`` with -1 (‹) or +1 (›).
    """

    stepped = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.previous_button = self._button("‹", "Previous version", "Show the previous version", -1)
        self.label = QLabel()
        self.label.setObjectName("versionLabel")
        self.next_button = self._button("›", "Next version", "Show the next version", +1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.previous_button)
        layout.addWidget(self.label)
        layout.addWidget(self.next_button)
        self.version: Version | None = None
        self.set_version(None)

    def _button(self, text: str, name: str, tip: str, step: int) -> QToolButton:
        button = QToolButton(text=text)
        button.setAutoRaise(True)
        button.setAccessibleName(name)
        button.setToolTip(tip)
        button.clicked.connect(lambda: self.stepped.emit(step))
        return button

    def set_version(self, version: Version | None) -> None:
        """Show ``version`` (None or a single version: hide the control)."""
        self.version = version
        if version is None or version.count < 2:
            self.hide()
            return
        self.label.setText(f"{version.index}/{version.count}")
        self.label.setAccessibleName(f"Version {version.index} of {version.count}")
        self.previous_button.setEnabled(version.index > 1)
        self.next_button.setEnabled(version.index < version.count)
        self.show()

    def set_enabled_for_streaming(self, streaming: bool) -> None:
        """No switching while a reply is being written."""
        self.setEnabled(not streaming)
