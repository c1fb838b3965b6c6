"""Model picker (load with progress, cancel, unload), first run, settings dialog, window state, responsiveness."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer

from tests.gui.gui_helpers import LOAD_TIMEOUT_MS, send


def _unload(qtbot, window):
    with qtbot.waitSignal(window.loader.unloaded, timeout=LOAD_TIMEOUT_MS):
        window.picker.unload_button.click()
    assert window.picker.status.text() == "No model loaded"


def test_load_shows_progress_and_can_be_cancelled(qtbot, window):
    _unload(qtbot, window)
    fractions: list[float] = []
    window.loader.progress.connect(fractions.append)
    with qtbot.waitSignal(window.loader.loaded, timeout=LOAD_TIMEOUT_MS):
        window.picker.load_button.click()
        assert window.picker.progress.isVisibleTo(window) and window.picker.cancel_button.isVisibleTo(window)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) > 2
    assert not window.picker.progress.isVisibleTo(window)
    assert window.picker.status.text().startswith("Loaded: ")

    _unload(qtbot, window)
    window.loader.progress.connect(lambda f: window.picker.cancel_button.click() if f < 1.0 else None)
    with qtbot.waitSignal(window.loader.cancelled, timeout=LOAD_TIMEOUT_MS):
        window.picker.load_button.click()
    assert window.core.engine.loaded is None
    assert window.picker.status.text() == "No model loaded"
    assert window.picker.load_button.isEnabled()


def test_event_loop_never_stalls_during_load_and_generation(qtbot, window):
    """A 10 ms timer's lateness stays under 100 ms while a model loads and while a reply streams."""
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    _unload(qtbot, window)
    timer.start()
    with qtbot.waitSignal(window.loader.loaded, timeout=LOAD_TIMEOUT_MS):
        window.picker.load_button.click()
    send(qtbot, window, "Write a short poem about rivers.")
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(gaps) > 10
    assert max(gaps) < 0.1, f"the GUI thread stalled for {max(gaps) * 1000:.0f} ms"


def test_first_run_shows_the_empty_state_hint(qtbot, window):
    assert window.core.conversations.list() == []
    assert window.chat_view.currentWidget() is window.chat_view.empty
    hint = window.chat_view.empty.hint.text()
    assert "smollm2" in hint and "Library" in hint
    assert window.conversations.ids() == []


def test_conversation_settings_are_used_for_replies(qtbot, window):
    from inference.sampling import SamplingOptions

    dialog = window.edit_conversation_settings()
    dialog.system_prompt.setPlainText("Answer in one word.")
    dialog.form.editors["max_tokens"].setValue(5)
    dialog.form.editors["temperature"].setValue(9.0)  # above the declared maximum: clamped
    dialog.save()
    conv = window.session.conversation()
    assert conv.settings["system_prompt"] == "Answer in one word."
    assert window.session.options() == SamplingOptions(**{**window.core.settings.sampling.model_dump(),
                                                          "max_tokens": 5, "temperature": 5.0})
    reply = send(qtbot, window, "Name a fruit.")
    assert reply.stats["completion_tokens"] <= 5


def test_settings_dialog_round_trip_with_bounds(qtbot, window):
    from app.settings import load_settings
    from ui.settings_dialog import SettingsDialog

    dialog = window.open_settings()
    engine = dialog.forms["engine"].editors
    engine["n_ctx"].setValue(10_000_000)  # above le=1<<20: the editor clamps it
    assert engine["n_ctx"].value() == 1 << 20
    engine["n_ctx"].setValue(2048)
    engine["n_threads"].setValue(engine["n_threads"].minimum())  # "Auto" -> None
    dialog.forms["desktop"].editors["close_to_tray"].setChecked(False)
    dialog.forms["sampling"].editors["stop"].setPlainText("END\nSTOP")
    dialog.forms["chat"].editors["model"].setText("")  # min_length=1: refused with a message
    assert not dialog.save()
    assert "model" in dialog.error.text() and dialog.isVisible()
    dialog.forms["chat"].editors["model"].setText("default")
    with qtbot.waitSignal(window.settingsChanged):
        assert dialog.save()
    stored = load_settings(window.core.paths.settings)
    assert stored.engine.n_ctx == 2048 and stored.engine.n_threads is None
    assert stored.desktop.close_to_tray is False
    assert stored.sampling.stop == ["END", "STOP"]
    assert window.core.settings == stored
    reopened = SettingsDialog(stored, window.core.paths.settings, window.core.paths.home)
    qtbot.addWidget(reopened)
    assert reopened.forms["engine"].editors["n_ctx"].value() == 2048
    assert reopened.forms["engine"].editors["n_threads"].text() == "Auto"
    assert not reopened.forms["desktop"].editors["close_to_tray"].isChecked()
    assert "keyring" in reopened.secrets.keyring_note.text()


def test_window_state_is_remembered(qtbot, core):
    from app.services.models import model_services
    from ui.main_window import MainWindow

    first = MainWindow(core, model_services(core))
    qtbot.addWidget(first)
    first.start(load_model=False)
    first.resize(720, 520)
    first.splitter.setSizes([300, 420])
    size, sizes = first.size(), first.splitter.sizes()
    first.close()
    second = MainWindow(core, model_services(core))
    qtbot.addWidget(second)
    second.start(load_model=False)
    assert second.size() == size and second.splitter.sizes() == sizes
    assert second.height() == 520
