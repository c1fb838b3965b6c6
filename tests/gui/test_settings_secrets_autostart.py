"""Settings: the remote large tier's key in the secrets panel, and start on login (XDG autostart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.surface import router_of


def test_without_a_keyring_the_panel_says_so_and_names_the_environment_variables(qtbot, core, monkeypatch,
                                                                                 no_keyring):
    from ui.secrets_panel import SecretsPanel

    monkeypatch.delenv("EMBER_SECRET_ROUTER_REMOTE", raising=False)
    panel = SecretsPanel(core.paths.home)
    qtbot.addWidget(panel)
    assert not panel.keyring_ok
    note = panel.keyring_note.text()
    assert "No system keyring" in note and "EMBER_SECRET_HF_TOKEN" in note and "EMBER_SECRET_ROUTER_REMOTE" in note
    assert not panel.remote_key.isEnabled() and not panel.hub_token.isEnabled()
    panel.save()  # nothing changed: nothing to store, no error

    monkeypatch.setenv("EMBER_SECRET_ROUTER_REMOTE", "sk-from-env")  # the fallback reaches the router
    assert router_of(core).large_tier("http://127.0.0.1:9/v1").remote.api_key == "sk-from-env"


def test_the_remote_key_is_stored_in_the_keyring_and_used_by_the_router(qtbot, window, memory_keyring,
                                                                       monkeypatch):
    monkeypatch.delenv("EMBER_SECRET_ROUTER_REMOTE", raising=False)
    dialog = window.open_settings()
    assert dialog.secrets.keyring_ok and dialog.secrets.remote_key.isEnabled()
    assert "router" in dialog.forms and "remote_url" in dialog.forms["router"].editors
    dialog.secrets.remote_key.setText("sk-remote-123")
    with qtbot.waitSignal(window.settingsChanged):
        assert dialog.save()
    assert memory_keyring.store[("ember", "router-remote")] == "sk-remote-123"
    assert router_of(window.core).large_tier("http://127.0.0.1:9/v1").remote.api_key == "sk-remote-123"
    reopened = window.open_settings()
    assert reopened.secrets.remote_key.text() == "sk-remote-123"
    reopened.secrets.remote_key.setText("")
    with qtbot.waitSignal(window.settingsChanged):
        assert reopened.save()
    assert ("ember", "router-remote") not in memory_keyring.store


def test_start_on_login_writes_and_removes_the_autostart_entry(qtbot, window, xdg_config_home: Path):
    from app import APP_ID
    from app.settings import load_settings

    entry = xdg_config_home / "autostart" / f"{APP_ID}.desktop"
    dialog = window.open_settings()
    assert dialog.autostart_note.isHidden()
    dialog.forms["desktop"].editors["start_on_login"].setChecked(True)
    with qtbot.waitSignal(window.settingsChanged):
        assert dialog.save()
    assert load_settings(window.core.paths.settings).desktop.start_on_login
    text = entry.read_text(encoding="utf-8")
    assert text.startswith("[Desktop Entry]\n") and "Name=Ember" in text and "Exec=" in text
    assert f"Icon={APP_ID}" in text and "X-GNOME-Autostart-enabled=true" in text

    dialog = window.open_settings()
    assert dialog.forms["desktop"].editors["start_on_login"].isChecked()
    dialog.forms["desktop"].editors["start_on_login"].setChecked(False)
    with qtbot.waitSignal(window.settingsChanged):
        assert dialog.save()
    assert not entry.exists()


def test_start_on_login_elsewhere_is_said_to_be_unsupported(qtbot, core, monkeypatch, xdg_config_home: Path):
    import app.services.autostart as autostart
    from ui.settings_dialog import SettingsDialog

    monkeypatch.setattr(autostart.sys, "platform", "sunos5")
    dialog = SettingsDialog(core.settings, core.paths.settings, core.paths.home)
    qtbot.addWidget(dialog)
    assert not dialog.autostart_note.isHidden() and "not supported" in dialog.autostart_note.text()
    assert not dialog.forms["desktop"].editors["start_on_login"].isEnabled()
    assert autostart.apply_start_on_login(True) is False
    assert not (xdg_config_home / "autostart").exists()
    with pytest.raises(autostart.AutostartError, match="not supported"):
        autostart.set_start_on_login(True)
