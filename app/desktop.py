"""The desktop app's wiring: window, tray icon and local API around one :class:`app.core.Ember`.

``ember`` with no subcommand calls :func:`launch`. This module and ``ui/`` are the only places that import Qt.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app import APP_ID
from app.core import Ember
from app.services.models import model_services
from app.paths import Paths
from storage.errors import EmberError
from ui.api_control import ApiControl, ApiServerLike
from ui.icon import app_icon
from ui.main_window import MainWindow
from ui.tray import NO_TRAY_NOTICE, Tray

if TYPE_CHECKING:
    from ui.single_instance import SingleInstance

log = logging.getLogger(__name__)

NO_DISPLAY_PLATFORMS = {"offscreen", "minimal", "vnc"}


def display_available() -> bool:
    """True when a window can be shown: a desktop session on Linux/BSD, always on macOS and Windows."""
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in NO_DISPLAY_PLATFORMS:
        return False
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def api_server_factory(core: Ember) -> Callable[[Callable[[str], None]], ApiServerLike] | None:
    """A maker of the local API server for the tray, or None when this build has no API."""
    try:
        from app.api.server import ApiServer
    except ImportError as exc:
        log.info("local API not available: %s", exc)
        return None
    return lambda on_state: ApiServer(core, on_state=on_state)


class DesktopApp:
    """The window, the tray icon and the API, wired together. Create it after the ``QApplication``."""

    def __init__(self, core: Ember, *, api: Callable[[Callable[[str], None]], ApiServerLike] | None = None) -> None:
        self.core = core
        self.window = MainWindow(core, model_services(core))
        self.tray = Tray(app_icon(), self.window)
        self.api = ApiControl(api, self.window.background, self.window) if api is not None else None
        self.has_tray = False
        self._quitting = False
        w, t = self.window, self.tray
        t.openRequested.connect(self.show_window)
        t.newChatRequested.connect(lambda: (self.show_window(), w.new_chat()))
        t.quitRequested.connect(self.quit)
        t.copyTokenRequested.connect(self.copy_api_token)
        w.quitRequested.connect(self.quit)
        if self.api is not None:
            t.apiToggled.connect(self.api.set_enabled)
            self.api.stateChanged.connect(t.set_api_state)
            self.api.stateChanged.connect(lambda on, addr: w.show_notice(
                f"Local API listening on {addr}" if on else "Local API stopped."))
            self.api.failed.connect(w.show_error)
            t.set_api_state(False, self.api.server.address)
        if w.downloads is not None:
            w.downloads.finished.connect(lambda name: t.notify("Download finished", f"{name} is ready to use."))
            w.downloads.failed.connect(lambda message: t.notify("Download failed", message))

    def start(self, *, load_model: bool = True) -> None:
        """Show the tray icon (or say once that there is none), the window, and the API if enabled."""
        self.has_tray = self.tray.show()
        self.window.hide_on_close = self.has_tray
        self.window.start(load_model=load_model)
        if not self.has_tray:
            self.window.show_info(NO_TRAY_NOTICE)
        if self.api is not None and self.core.settings.api.enabled:
            self.api.set_enabled(True)

    def show_window(self) -> None:
        """Bring the window back from the tray."""
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def copy_api_token(self) -> None:
        """Put the local API token on the clipboard."""
        try:
            from app.api.token import load_token
            token = load_token(self.core.paths.home)
        except EmberError as exc:
            self.window.show_error(str(exc))
            return
        if token is not None:
            QGuiApplication.clipboard().setText(token.value)
            self.tray.notify("Ember", "API token copied.")

    def quit(self) -> None:
        """Stop the API and the reply, save the window, and leave the event loop (the caller closes the core)."""
        if self._quitting:
            return
        self._quitting = True
        self.tray.hide()
        if self.api is not None:
            self.api.stop_now()
        self.window.shutdown()
        self.window.hide()
        app = QApplication.instance()
        if app is not None:
            app.quit()


def run_desktop(argv: Sequence[str] | None = None, *, quit_after: float | None = None) -> int:
    """Run the desktop app until Quit; returns the exit code.

    Args:
        argv: Qt's command line.
        quit_after: quit by itself after this many seconds once the window is shown (smoke tests).
    """
    QApplication.setApplicationName("Ember")
    QApplication.setOrganizationName("Ember")
    QApplication.setDesktopFileName(APP_ID)
    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(app_icon())
    instance = single_instance(Paths.from_env())
    if instance is not None and not instance.claim():
        print("ember: Ember is already running; its window was brought to the front.", flush=True)
        return 0
    core = Ember.open()
    try:
        desktop = DesktopApp(core, api=api_server_factory(core))
        if instance is not None:
            instance.activated.connect(desktop.show_window)
        desktop.start()
        if quit_after is not None:
            def report_and_quit() -> None:
                size = desktop.window.size()
                print(f"ember: window shown ({size.width()}x{size.height()}, visible={desktop.window.isVisible()})",
                      flush=True)
                desktop.quit()

            QTimer.singleShot(int(quit_after * 1000), report_and_quit)
        return app.exec()
    finally:
        if instance is not None:
            instance.close()
        core.close()


def single_instance(paths: Paths) -> "SingleInstance | None":
    """The single-instance guard of the data root, or None when this build has no QtNetwork."""
    try:
        from ui.single_instance import SingleInstance
    except ImportError as exc:
        log.info("single instance check not available: %s", exc)
        return None
    return SingleInstance(paths.home)

