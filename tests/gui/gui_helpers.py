"""Helpers shared by the GUI tests."""

from __future__ import annotations

LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 60_000


def send(qtbot, win, text: str, timeout: int = REPLY_TIMEOUT_MS):
    """Type ``text`` into the composer, press Enter and wait for the reply; returns the stored reply message."""
    from PySide6.QtCore import Qt

    win.composer.input.setPlainText(text)
    with qtbot.waitSignal(win.session.replyFinished, timeout=timeout) as blocker:
        qtbot.keyClick(win.composer.input, Qt.Key.Key_Return)
    return blocker.args[0]
