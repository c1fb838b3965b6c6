"""The desktop wiring: no tray offscreen (said once, normal window), quitting, and a screenshot of the window."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtGui import QImage

from tests.gui.gui_helpers import LOAD_TIMEOUT_MS, send


def test_without_a_tray_the_app_says_so_once_and_keeps_a_normal_window(qtbot, core, caplog):
    from app.desktop import DesktopApp, display_available
    from ui.tray import NO_TRAY_NOTICE, tray_available

    assert not display_available() and not tray_available()  # offscreen
    quits: list[bool] = []
    desktop = DesktopApp(core)
    qtbot.addWidget(desktop.window)
    desktop.window.quitRequested.connect(lambda: quits.append(True))
    with qtbot.waitSignal(desktop.window.loader.loaded, timeout=LOAD_TIMEOUT_MS):
        desktop.start()
    assert not desktop.has_tray and not desktop.window.hide_on_close
    assert desktop.window.banner.isVisible() and desktop.window.banner.text == NO_TRAY_NOTICE
    assert desktop.window.banner.kind == "info"
    assert sum(NO_TRAY_NOTICE in r.getMessage() for r in caplog.records) == 1
    assert desktop.window.isVisible()
    assert core.settings.desktop.close_to_tray  # the setting is on, but there is no tray to hide in
    desktop.window.close()
    assert quits == [True], "closing the window quits when there is no tray"
    assert not desktop.window.isVisible()


def test_close_hides_to_tray_when_one_exists(qtbot, core):
    from app.desktop import DesktopApp

    desktop = DesktopApp(core)
    qtbot.addWidget(desktop.window)
    desktop.window.hide_on_close = True  # as if a tray icon were shown
    desktop.window.start(load_model=False)
    quits: list[bool] = []
    desktop.window.quitRequested.connect(lambda: quits.append(True))
    desktop.window.close()
    assert not desktop.window.isVisible() and quits == []
    desktop.show_window()
    assert desktop.window.isVisible()


def test_tray_menu_reflects_the_api_state(qtbot, core):
    from ui.icon import app_icon
    from ui.tray import Tray

    tray = Tray(app_icon())
    assert [a.text() for a in tray.menu.actions() if a.text()] == [
        "Open Ember", "New chat", "Local API (not available)", "Local API is off", "Copy API token", "Quit Ember"]
    tray.set_api_state(True, "http://127.0.0.1:8765")
    assert tray.api_action.isChecked() and tray.api_address.text() == "Listening on http://127.0.0.1:8765"
    with qtbot.waitSignal(tray.quitRequested):
        tray.quit_action.trigger()
    assert not tray.show(), "offscreen has no tray"


def test_screenshot_of_the_chat_window(qtbot, window, tmp_path):
    """Two real turns of the starter model (nothing staged): a code answer, then a follow-up."""
    window.resize(1120, 740)
    send(qtbot, window, "Write a Python function that reverses a list.")
    send(qtbot, window, "Thanks! Now say it in one sentence.")
    replies = [m for m in window.core.conversations.messages(window.session.conversation_id)
               if m.role == "assistant"]
    assert len(replies) == 2 and all(m.content and m.stats for m in replies)
    out = Path(os.environ.get("EMBER_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "chat.png"
    assert window.grab().save(str(path))
    image = QImage(str(path))
    assert image.width() >= 700 and image.height() >= 500
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 50, "the screenshot has real content"
