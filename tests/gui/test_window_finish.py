"""A window that looks finished: the welcome text is never clipped, every control has an accessible name, and the
light/dark themes follow the setting and the system."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFontMetrics, QImage
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QApplication, QComboBox, QHeaderView,
                               QLineEdit, QPlainTextEdit, QTextEdit)

from tests.gui.gui_helpers import REPLY_TIMEOUT_MS, send


def _needed_height(label) -> int:
    flags = int(Qt.TextFlag.TextWordWrap) | int(label.alignment())
    rect = QFontMetrics(label.font()).boundingRect(QRect(0, 0, label.contentsRect().width(), 100_000), flags,
                                                  label.text())
    return rect.height()


def test_welcome_text_is_never_clipped(qtbot, window):
    for size in ((1400, 900), (1120, 740), (1000, 700)):
        window.resize(*size)
        qtbot.waitUntil(lambda: window.width() == size[0])
        QApplication.processEvents()
        for label in (window.chat_view.empty.title, window.chat_view.empty.hint):
            assert label.isVisible()
            needed = _needed_height(label)
            assert label.contentsRect().height() >= needed, (
                f"{label.objectName()} at {size}: {label.contentsRect().height()} px shown, {needed} px needed")
            assert label.sizeHint().height() >= needed
            assert label.heightForWidth(label.width()) <= label.height()


INTERACTIVE = (QAbstractButton, QLineEdit, QComboBox, QAbstractItemView, QPlainTextEdit, QTextEdit)


def _unnamed(root) -> list[str]:
    missing = []
    for kind in INTERACTIVE:
        for widget in root.findChildren(kind):
            if widget.objectName().startswith("qt_") or not widget.isVisibleTo(root) or \
                    isinstance(widget, QHeaderView):  # a table's header: the table carries the name
                continue
            if isinstance(widget.parent(), QComboBox) or (
                    widget.parent() is not None and isinstance(widget.parent().parent(), QComboBox)):
                continue  # a combo box's own line edit or popup list: the combo box carries the name
            text = widget.text() if isinstance(widget, QAbstractButton) else ""
            if not (widget.accessibleName().strip() or text.strip()):
                missing.append(f"{type(widget).__name__} {widget.objectName()!r} tooltip={widget.toolTip()!r} "
                               f"in {type(widget.parent()).__name__}")
    return missing


def test_every_control_has_an_accessible_name_or_visible_text(qtbot, window):
    send(qtbot, window, "Say hello.")  # a reply with its buttons
    for page in ("chat", "library", "downloads"):
        window.show_page(page)
        QApplication.processEvents()
        assert _unnamed(window) == [], page
    dialog = window.open_settings()
    assert _unnamed(dialog) == []
    dialog.close()
    dialog = window.edit_conversation_settings()
    assert _unnamed(dialog) == []
    assert _unnamed(dialog.open_presets()) == []
