"""One message in the chat view: who wrote it, its Markdown body, actions, and a stats footer for replies."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QToolButton,
                               QVBoxLayout, QWidget)

from storage.conversations import Message, Version
from ui.message_body import MessageBody
from ui.reply_stats import footer_text, tier_badge
from ui.version_switcher import VersionSwitcher


class MessageWidget(QFrame):
    """A user message or an assistant reply.

    Signals: ``regenerateRequested()``, ``askLargeRequested(message_id)`` (write this small-tier reply again with
    the large tier), ``editSubmitted(message_id, text)``, ``versionRequested(message_id, step)`` (‹ is -1, › is +1).
    """

    regenerateRequested = Signal()
    askLargeRequested = Signal(int)
    editSubmitted = Signal(int, str)
    versionRequested = Signal(int, int)

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        self.is_user = message.role == "user"
        self.setObjectName("userBubble" if self.is_user else "assistantBubble")
        role = "You" if self.is_user else (message.model or "Assistant")
        self.role_label = QLabel(role)
        self.role_label.setObjectName("roleLabel")
        self.body = MessageBody(message.content)
        self.error_label = QLabel()
        self.error_label.setObjectName("errorText")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.footer = QLabel()
        self.footer.setObjectName("footer")
        self.tier = QLabel()
        self.tier.setObjectName("tierBadge")
        self.tier.hide()
        self.copy_button = self._tool("Copy", "Copy the message text", self.copy)
        self.edit_button = self._tool("Edit", "Edit this message and send it again", self.begin_edit)
        self.regenerate_button = self._tool("Regenerate", "Write this reply again",
                                            self.regenerateRequested.emit)
        self.ask_large_button = self._tool("Ask the large model", "Write this reply again with the large model (the "
                                           "router learns the small model was not good enough here)",
                                           lambda: self.askLargeRequested.emit(self.message.id))
        self.edit_button.setVisible(self.is_user)
        self.regenerate_button.hide()
        self.ask_large_button.hide()
        self.versions = VersionSwitcher()
        self.versions.stepped.connect(lambda step: self.versionRequested.emit(self.message.id, step))
        self._editor: QWidget | None = None

        actions = QHBoxLayout()
        actions.setSpacing(2)
        actions.addWidget(self.footer)
        actions.addWidget(self.tier)
        actions.addStretch(1)
        actions.addWidget(self.versions)
        for button in (self.copy_button, self.edit_button, self.regenerate_button, self.ask_large_button):
            actions.addWidget(button)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(12, 8, 12, 6)
        self._layout.setSpacing(4)
        self._layout.addWidget(self.role_label)
        self._layout.addWidget(self.body)
        self._layout.addWidget(self.error_label)
        self._layout.addLayout(actions)
        self.set_streaming(message.stats.get("finish_reason") == "streaming")
        self.show_stats(message)

    def _tool(self, text: str, tip: str, slot) -> QToolButton:
        button = QToolButton(text=text)
        button.setAutoRaise(True)
        button.setAccessibleName(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    # -- content -------------------------------------------------------------------------------------------------

    def set_text(self, text: str) -> None:
        """Show new text (while a reply streams)."""
        self.body.set_text(text)

    def set_streaming(self, streaming: bool) -> None:
        """Hide actions while the reply is still being written."""
        self.copy_button.setEnabled(not streaming)
        self.versions.set_enabled_for_streaming(streaming)
        self.footer.setText("writing…" if streaming else self.footer.text())

    def show_stats(self, message: Message) -> None:
        """Finish the message: final text, footer figures, tier badge, error text."""
        self.message = message
        if message.stats.get("finish_reason") == "streaming":
            return
        self.body.set_text(message.content)
        self.set_streaming(False)
        if self.is_user:
            self.footer.setText("")
            return
        self.footer.setText(footer_text(message.stats))
        badge = tier_badge(message.stats)
        self.tier.setVisible(badge is not None)
        if badge:
            self.tier.setText(badge[0])
            self.tier.setToolTip(badge[1])
        error = message.stats.get("error")
        self.error_label.setVisible(bool(error))
        if error:
            self.setObjectName("errorBubble")
            self.error_label.setText(str(error))
            self.style().unpolish(self)
            self.style().polish(self)

    def set_version(self, version: Version | None) -> None:
        """Show where this message stands among its versions (hidden when it has only one)."""
        self.versions.set_version(version)

    def add_extra(self, widget: QWidget) -> None:
        """Show ``widget`` under the message text, above the footer (tool calls, sources of a reply)."""
        self._layout.insertWidget(self._layout.count() - 1, widget)

    def set_last_reply(self, last: bool) -> None:
        """Only the conversation's last reply offers Regenerate, and, when the small tier wrote it, Ask the large
        model."""
        self.regenerate_button.setVisible(last and not self.is_user)
        router = self.message.stats.get("router")
        small = isinstance(router, dict) and router.get("tier") == "small"
        self.ask_large_button.setVisible(last and not self.is_user and small)

    def copy(self) -> None:
        """Put the message's text on the clipboard."""
        QGuiApplication.clipboard().setText(self.body.text)

    # -- edit and resend -----------------------------------------------------------------------------------------

    def begin_edit(self) -> None:
        """Replace the body with an editor holding the message text."""
        if self._editor is not None:
            return
        editor = QWidget()
        self.editor_text = QPlainTextEdit(self.body.text)
        self.editor_text.setMinimumHeight(60)
        send = QPushButton("Save and send")
        send.setObjectName("primary")
        cancel = QPushButton("Cancel")
        send.clicked.connect(self._submit_edit)
        cancel.clicked.connect(self.end_edit)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(cancel)
        row.addWidget(send)
        box = QVBoxLayout(editor)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.editor_text)
        box.addLayout(row)
        self.body.hide()
        self._layout.insertWidget(2, editor)
        self._editor = editor
        self.editor_text.setFocus(Qt.FocusReason.OtherFocusReason)

    def end_edit(self) -> None:
        """Leave edit mode without sending."""
        if self._editor is not None:
            self._editor.deleteLater()
            self._editor = None
            self.body.show()

    def _submit_edit(self) -> None:
        text = self.editor_text.toPlainText().strip()
        if text:
            self.end_edit()
            self.editSubmitted.emit(self.message.id, text)
