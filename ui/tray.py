"""The system tray icon and its menu; where no tray exists the app says so once and keeps a normal window."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

log = logging.getLogger(__name__)

NO_TRAY_NOTICE = ("This desktop has no system tray, so Ember runs as a normal window: closing it quits Ember "
                  "(and stops the local API).")


def tray_available() -> bool:
    """True when the desktop shows tray icons (False offscreen, on bare X servers and some Wayland shells)."""
    return QSystemTrayIcon.isSystemTrayAvailable()


class Tray(QObject):
    """Tray icon with Open Ember, New chat, API on/off (with its address), Copy API token and Quit.

    Signals: ``openRequested()``, ``newChatRequested()``, ``apiToggled(on)``, ``copyTokenRequested()``,
    ``quitRequested()``.
    """

    openRequested = Signal()
    newChatRequested = Signal()
    apiToggled = Signal(bool)
    copyTokenRequested = Signal()
    quitRequested = Signal()

    def __init__(self, icon: QIcon, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.menu = QMenu()
        self.open_action = QAction("Open Ember", self.menu)
        self.new_chat_action = QAction("New chat", self.menu)
        self.api_action = QAction("Local API", self.menu, checkable=True)
        self.api_address = QAction("", self.menu, enabled=False)
        self.token_action = QAction("Copy API token", self.menu)
        self.quit_action = QAction("Quit Ember", self.menu)
        for action in (self.open_action, self.new_chat_action):
            self.menu.addAction(action)
        self.menu.addSeparator()
        for action in (self.api_action, self.api_address, self.token_action):
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.icon = QSystemTrayIcon(icon, self)
        self.icon.setToolTip("Ember")
        self.icon.setContextMenu(self.menu)
        self.open_action.triggered.connect(self.openRequested.emit)
        self.new_chat_action.triggered.connect(self.newChatRequested.emit)
        self.api_action.triggered.connect(self.apiToggled.emit)
        self.token_action.triggered.connect(self.copyTokenRequested.emit)
        self.quit_action.triggered.connect(self.quitRequested.emit)
        self.icon.activated.connect(self._activated)
        self.set_api_state(None, "")

    @property
    def visible(self) -> bool:
        """True when the icon is shown in a tray."""
        return self.icon.isVisible()

    def show(self) -> bool:
        """Show the icon; False when there is no tray to show it in."""
        if not tray_available():
            return False
        self.icon.show()
        return True

    def hide(self) -> None:
        """Remove the icon."""
        self.icon.hide()

    def set_api_state(self, running: bool | None, address: str) -> None:
        """Reflect the local API: running or not, its address; None when this build has no API server."""
        self.api_action.setEnabled(running is not None)
        self.api_action.setChecked(bool(running))
        self.api_action.setText("Local API" if running is not None else "Local API (not available)")
        self.api_address.setText(f"Listening on {address}" if running else "Local API is off")
        self.token_action.setEnabled(running is not None)

    def notify(self, title: str, message: str) -> None:
        """A desktop notification from the tray icon (ignored without a tray)."""
        if self.visible:
            self.icon.showMessage(title, message, QSystemTrayIcon.MessageIcon.Information, 5000)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.openRequested.emit()
