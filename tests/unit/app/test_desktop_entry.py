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
    from app.cli import main

    assert main(["install-desktop", "--prefix", str(tmp_path)]) == 0
    assert f"{APP_ID}.desktop" in capsys.readouterr().out
