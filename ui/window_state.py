"""Window geometry and layout remembered between runs, in an INI file under the data root (never the registry)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QSplitter

FILE_NAME = "window.ini"


class WindowState:
    """Saves and restores a main window's geometry, state and splitter sizes."""

    def __init__(self, home: Path) -> None:
        self.path = home / FILE_NAME
        self._store = QSettings(str(self.path), QSettings.Format.IniFormat)

    def restore(self, window: QMainWindow, splitter: QSplitter) -> bool:
        """Apply the saved state; False when there was none (first run)."""
        geometry = self._store.value("window/geometry")
        if not isinstance(geometry, QByteArray):
            return False
        window.restoreGeometry(geometry)
        state = self._store.value("window/state")
        if isinstance(state, QByteArray):
            window.restoreState(state)
        sizes = self._store.value("window/splitter")
        if isinstance(sizes, QByteArray):
            splitter.restoreState(sizes)
        return True

    def save(self, window: QMainWindow, splitter: QSplitter) -> None:
        """Write the current state to disk."""
        self._store.setValue("window/geometry", window.saveGeometry())
        self._store.setValue("window/state", window.saveState())
        self._store.setValue("window/splitter", splitter.saveState())
        self._store.sync()
