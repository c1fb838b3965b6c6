"""A fenced code block: language label, Copy button, highlighted text."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ui.markdown import code_html
from ui.theme import is_dark


class CodeBlock(QFrame):
    """Shows one code block; :meth:`set_code` re-highlights it while it streams."""

    def __init__(self, code: str, language: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self._code = ""
        self._language = language
        header = QHBoxLayout()
        self.language_label = QLabel(language or "code")
        self.language_label.setObjectName("codeLanguage")
        self.copy_button = QToolButton(text="Copy")
        self.copy_button.setAutoRaise(True)
        self.copy_button.setToolTip("Copy this code")
        self.copy_button.clicked.connect(self.copy)
        header.addWidget(self.language_label)
        header.addStretch(1)
        header.addWidget(self.copy_button)
        self.body = QLabel()
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setWordWrap(True)
        self.body.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 4, 10, 8)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.body)
        self.set_code(code, language)

    @property
    def code(self) -> str:
        """The plain code text."""
        return self._code

    def set_code(self, code: str, language: str) -> None:
        """Replace the code (no work when it did not change)."""
        if code == self._code and language == self._language:
            return
        self._code, self._language = code, language
        self.language_label.setText(language or "code")
        self.body.setText(code_html(code, language, dark=is_dark()))

    def copy(self) -> None:
        """Put the code on the clipboard."""
        QGuiApplication.clipboard().setText(self._code)
        self.copy_button.setText("Copied")
