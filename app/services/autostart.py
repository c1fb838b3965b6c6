"""Start on login: an XDG autostart entry on Linux, a LaunchAgent on macOS, a Run key on Windows.

- Linux and other XDG desktops: ``$XDG_CONFIG_HOME/autostart/io.ember.Ember.desktop``.
- macOS: ``~/Library/LaunchAgents/io.ember.Ember.plist`` (``RunAtLoad``), read by launchd at the next login.
- Windows: the value ``Ember`` under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``.
"""

from __future__ import annotations

import os
import plistlib
import sys
from pathlib import Path

from app import APP_ID
from app.desktop_entry import desktop_entry, launcher_argv, launcher_command
from storage.errors import EmberError

UNSUPPORTED_NOTICE = "Start on login is not supported on this platform (Linux, macOS and Windows are)."
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "Ember"


class AutostartError(EmberError, RuntimeError):
    """Start on login cannot be set up here."""


def _platform() -> str:
    if sys.platform.startswith(("win", "cygwin")):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return "xdg"
    return "unsupported"


def autostart_supported() -> bool:
    """True where start on login is implemented."""
    return _platform() != "unsupported"


def xdg_config_home() -> Path:
    """``$XDG_CONFIG_HOME`` or ``~/.config``."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def autostart_path() -> Path:
    """Where the autostart entry lives (XDG and macOS; on Windows it is a registry value)."""
    if _platform() == "macos":
        return Path.home() / "Library" / "LaunchAgents" / f"{APP_ID}.plist"
    return xdg_config_home() / "autostart" / f"{APP_ID}.desktop"


def launch_agent(argv: list[str]) -> bytes:
    """The LaunchAgent property list that starts ``argv`` at login."""
    return plistlib.dumps({"Label": APP_ID, "ProgramArguments": argv, "RunAtLoad": True,
                           "ProcessType": "Interactive"})


def autostart_enabled() -> bool:
    """True when the autostart entry exists."""
    kind = _platform()
    if kind == "windows":
        return _run_key_value() is not None
    return kind != "unsupported" and autostart_path().is_file()


def set_start_on_login(enabled: bool, *, exec_command: str | None = None) -> Path | str:
    """Write (or remove) the autostart entry; returns the file's path (the registry key on Windows).

    Raises:
        AutostartError: not supported on this platform.
        OSError: the entry could not be written or removed.
    """
    kind = _platform()
    if kind == "unsupported":
        raise AutostartError(UNSUPPORTED_NOTICE)
    if kind == "windows":
        _set_run_key(exec_command or launcher_command(windows=True) if enabled else None)
        return "HKCU\\" + RUN_KEY
    path = autostart_path()
    if not enabled:
        path.unlink(missing_ok=True)
        return path
    if kind == "macos":
        data = launch_agent(launcher_argv())
    else:
        text = desktop_entry(exec_command or launcher_command()) + "X-GNOME-Autostart-enabled=true\n"
        data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def apply_start_on_login(enabled: bool) -> bool:
    """Make the autostart entry match the setting; False (nothing done) where it is not supported.

    Raises:
        OSError: the entry could not be written or removed.
    """
    if not autostart_supported():
        return False
    if enabled != autostart_enabled():
        set_start_on_login(enabled)
    return True


def _run_key_value() -> str | None:
    import winreg  # type: ignore[import-not-found]  # Windows only

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            return str(winreg.QueryValueEx(key, RUN_VALUE)[0])
    except FileNotFoundError:
        return None


def _set_run_key(command: str | None) -> None:
    import winreg  # type: ignore[import-not-found]  # Windows only

    with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
        if command is None:
            try:
                winreg.DeleteValue(key, RUN_VALUE)
            except FileNotFoundError:
                pass
        else:
            winreg.SetValueEx(key, RUN_VALUE, 0, winreg.REG_SZ, command)
