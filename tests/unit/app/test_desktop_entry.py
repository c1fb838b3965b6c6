import configparser
import sys

from app import APP_ID
from app.desktop_entry import install_desktop, launcher_command


def test_install_writes_entry_and_icon(tmp_path):
    entry, icon = install_desktop(data_home=tmp_path)
    assert entry == tmp_path / "applications" / f"{APP_ID}.desktop"
    assert icon.read_bytes().startswith(b"<svg")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(entry.read_text())
    section = parser["Desktop Entry"]
    assert section["Type"] == "Application" and section["Icon"] == APP_ID
    assert section["Exec"] == launcher_command() and section["StartupWMClass"] == APP_ID
    assert sys.executable in section["Exec"] and section["Exec"].endswith("-m app")


def test_cli_install_desktop(tmp_path, capsys):
    from app.cli.main import main

    assert main(["install-desktop", "--prefix", str(tmp_path)]) == 0
    assert f"{APP_ID}.desktop" in capsys.readouterr().out


def test_macos_launch_agent_starts_ember_at_login(tmp_path, monkeypatch):
    import plistlib

    import app.services.autostart as autostart

    monkeypatch.setattr(autostart.sys, "platform", "darwin")
    monkeypatch.setattr(autostart.Path, "home", classmethod(lambda cls: tmp_path))
    assert autostart.autostart_supported() and not autostart.autostart_enabled()
    path = autostart.set_start_on_login(True)
    assert path == tmp_path / "Library" / "LaunchAgents" / f"{APP_ID}.plist"
    agent = plistlib.loads(path.read_bytes())
    assert agent["Label"] == APP_ID and agent["RunAtLoad"] is True
    assert agent["ProgramArguments"] == [sys.executable, "-m", "app"]
    assert autostart.apply_start_on_login(False) and not path.exists()


def test_the_launcher_command_is_quoted_for_each_platform(monkeypatch):
    import app.desktop_entry as de

    monkeypatch.setattr(de, "launcher_argv", lambda: ["C:\\Program Files\\Ember\\python.exe", "-m", "app"])
    assert launcher_command(windows=True) == '"C:\\Program Files\\Ember\\python.exe" -m app'  # CreateProcess
    monkeypatch.setattr(de, "launcher_argv", lambda: ["/opt/my apps/bin/python", "-m", "app"])
    assert launcher_command() == '"/opt/my apps/bin/python" -m app'  # Desktop Entry Exec: double quotes
    monkeypatch.setattr(de, "launcher_argv", lambda: ["/usr/bin/python3", "-m", "app"])
    assert launcher_command() == "/usr/bin/python3 -m app"
