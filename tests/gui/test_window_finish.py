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


def _save(window, name: str, tmp_path: Path) -> QImage:
    out = Path(os.environ.get("EMBER_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    assert window.grab().save(str(path))
    return QImage(str(path))


def test_theme_setting_and_system_scheme(qtbot, window, monkeypatch):
    from app.settings import Settings
    from ui import theme

    try:
        assert window.core.settings.desktop.theme == "system"
        settings = Settings.model_validate({**window.core.settings.model_dump(), "desktop": {"theme": "dark"}})
        window.apply_settings(settings)
        assert theme.is_dark() and window.theme.scheme == "dark"
        assert window.palette().color(window.backgroundRole()).lightness() < 80, "the window repainted dark"
        settings = Settings.model_validate({**settings.model_dump(), "desktop": {"theme": "light"}})
        window.apply_settings(settings)
        assert not theme.is_dark()
        # "system" follows the system's scheme when it changes
        window.apply_settings(Settings.model_validate({**settings.model_dump(), "desktop": {"theme": "system"}}))
        monkeypatch.setattr(theme, "system_scheme", lambda: "dark")
        QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
        assert theme.is_dark()
        monkeypatch.setattr(theme, "system_scheme", lambda: "light")
        QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
        assert not theme.is_dark()
        window.apply_settings(Settings.model_validate({**settings.model_dump(), "desktop": {"theme": "light"}}))
        monkeypatch.setattr(theme, "system_scheme", lambda: "dark")
        QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
        assert not theme.is_dark(), "a chosen theme does not follow the system"
    finally:
        window.theme.apply("light")


def test_screenshot_of_the_dark_theme(qtbot, window, tmp_path):
    try:
        from inference.sampling import SamplingOptions

        window.core.settings.sampling = SamplingOptions(temperature=0.0, seed=1, max_tokens=120)
        window.theme.apply("dark")
        window.resize(1120, 740)
        reply = send(qtbot, window, "Write a Python function that adds two numbers.")
        assert reply.content and reply.stats["completion_tokens"] > 0
        shown = window.chat_view.message_widgets[-1]
        assert shown.body.text == reply.content, "the screenshot shows the model's own reply"
        image = _save(window, "dark.png", tmp_path)
        assert image.width() >= 700 and image.height() >= 500
        corner = image.pixelColor(image.width() - 20, image.height() // 2)
        assert corner.lightness() < 80, "the chat area is dark"
    finally:
        window.theme.apply("light")
