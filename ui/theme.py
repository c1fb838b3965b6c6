"""Palette-aware look: one style sheet that follows the system light/dark palette, and helpers for it."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication, QPalette

STYLE = """
QFrame#userBubble { background: palette(alternate-base); border-radius: 10px; }
QFrame#assistantBubble { background: transparent; }
QFrame#errorBubble { border: 1px solid #c0392b; border-radius: 10px; }
QFrame#codeBlock { background: palette(base); border: 1px solid palette(mid); border-radius: 6px; }
QLabel#roleLabel { font-weight: 600; }
QLabel#footer, QLabel#hint, QLabel#codeLanguage { color: palette(placeholder-text); }
QLabel#tierBadge { border: 1px solid palette(highlight); border-radius: 7px; padding: 0 6px;
                   color: palette(highlight); }
QLabel#errorText { color: #c0392b; }
QFrame#banner { background: #fdecea; border: 1px solid #e6a39a; border-radius: 6px; }
QFrame#banner QLabel { color: #611a15; }
QFrame#banner[kind="info"] { background: palette(alternate-base); border: 1px solid palette(mid); }
QFrame#banner[kind="info"] QLabel { color: palette(window-text); }
QLabel#emptyTitle { font-size: 18pt; font-weight: 600; }
QWidget#sidebar { background: palette(window); }
QPushButton#primary { font-weight: 600; }
"""


def is_dark() -> bool:
    """True when the application palette is dark (text lighter than the window)."""
    palette = QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.WindowText).lightness() > palette.color(
        QPalette.ColorRole.Window).lightness()
