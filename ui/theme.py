"""The look: a light and a dark palette (Fusion style) that follow the system's colour scheme or the
``desktop.theme`` setting, and one style sheet written against the palette, with spacing and type sizes in one place."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")

STYLE = """
QFrame#userBubble { background: palette(alternate-base); border-radius: 10px; }
QFrame#assistantBubble { background: transparent; }
QFrame#errorBubble { border: 1px solid #c0392b; border-radius: 10px; }
QFrame#codeBlock { background: palette(base); border: 1px solid palette(mid); border-radius: 6px; }
QLabel#roleLabel { font-weight: 600; }
QLabel#footer, QLabel#hint, QLabel#codeLanguage, QLabel#versionLabel { color: palette(placeholder-text); }
QLabel#versionLabel { padding: 0 2px; }
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
QPushButton, QComboBox, QLineEdit { min-height: 22px; }
QPushButton { padding: 3px 12px; }
"""

DARK_EXTRA = """
QFrame#errorBubble { border-color: #e06c5f; }
QLabel#errorText { color: #f28b82; }
QFrame#banner { background: #3b1f1d; border: 1px solid #8c3b33; }
QFrame#banner QLabel { color: #f6d5d1; }
"""

_COLOURS = {
    "light": {"Window": "#f6f6f7", "WindowText": "#1f2328", "Base": "#ffffff", "AlternateBase": "#eef0f3",
              "Text": "#1f2328", "Button": "#f0f1f3", "ButtonText": "#1f2328", "Highlight": "#2f6fed",
              "HighlightedText": "#ffffff", "PlaceholderText": "#6b7280", "Mid": "#c9ccd1", "Dark": "#9ca0a6",
              "Light": "#ffffff", "Midlight": "#e3e5e8", "Shadow": "#7d8187", "ToolTipBase": "#ffffff",
              "ToolTipText": "#1f2328", "Link": "#2f6fed", "BrightText": "#ffffff"},
    "dark": {"Window": "#1e1f22", "WindowText": "#e3e5e8", "Base": "#26282c", "AlternateBase": "#2f3237",
             "Text": "#e3e5e8", "Button": "#2b2d31", "ButtonText": "#e3e5e8", "Highlight": "#4c8dff",
             "HighlightedText": "#ffffff", "PlaceholderText": "#9aa0a8", "Mid": "#4a4e55", "Dark": "#16171a",
             "Light": "#3a3d43", "Midlight": "#33363b", "Shadow": "#0c0d0e", "ToolTipBase": "#2b2d31",
             "ToolTipText": "#e3e5e8", "Link": "#7aa7ff", "BrightText": "#ffffff"},
}


def palette_for(scheme: str) -> QPalette:
    """The palette of the ``light`` or ``dark`` theme (disabled text dimmed)."""
    palette = QPalette()
    for role, colour in _COLOURS[scheme].items():
        palette.setColor(getattr(QPalette.ColorRole, role), QColor(colour))
    dim = QColor(_COLOURS[scheme]["PlaceholderText"])
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, dim)
    return palette


def system_scheme() -> str:
    """``dark`` when the system asks for a dark colour scheme, else ``light`` (also when it does not say)."""
    scheme = QGuiApplication.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def resolve(choice: str) -> str:
    """The scheme a theme setting means now: ``light`` or ``dark`` (``system`` follows the system)."""
    if choice not in THEMES:
        raise ValueError(f"theme must be one of {THEMES}, not {choice!r}")
    return system_scheme() if choice == "system" else choice


class ThemeManager(QObject):
    """Applies the theme to the whole application and, for ``system``, follows the system's changes."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.choice = "system"
        self.scheme = "light"
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._system_changed)

    def apply(self, choice: str) -> str:
        """Use the ``system``, ``light`` or ``dark`` theme from now on; returns the scheme applied."""
        self.choice = choice
        self.scheme = resolve(choice)
        app = QApplication.instance()
        if app is not None:
            app.setStyle("Fusion")
            app.setPalette(palette_for(self.scheme))
            app.setStyleSheet(STYLE + (DARK_EXTRA if self.scheme == "dark" else ""))
        return self.scheme

    def _system_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self.choice == "system":
            self.apply("system")


def is_dark() -> bool:
    """True when the application palette is dark (text lighter than the window)."""
    palette = QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.WindowText).lightness() > palette.color(
        QPalette.ColorRole.Window).lightness()
