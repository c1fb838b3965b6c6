"""The window's one place for known errors and notices: a dismissable banner above the composer."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget


class Banner(QFrame):
    """Shows one message until dismissed or replaced."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        close = QToolButton(text="✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    @property
    def text(self) -> str:
        """The message shown (empty when none was shown)."""
        return self.label.text()

    @property
    def kind(self) -> str:
        """``error`` or ``info``."""
        return str(self.property("kind") or "error")

    def show_message(self, message: str, *, kind: str = "error") -> None:
        """Show ``message`` as an ``error`` (red) or an ``info`` notice (neutral)."""
        self.label.setText(message)
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.show()
