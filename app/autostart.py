"""Start on login: an XDG autostart entry on Linux (``~/.config/autostart/io.ember.Ember.desktop``).

macOS (LaunchAgent) and Windows (Run key) are not supported yet; :func:`autostart_supported` says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app import APP_ID
from app.desktop_entry import desktop_entry, launcher_command
from storage.errors import EmberError

UNSUPPORTED_NOTICE = "Start on login is not supported on this platform yet (Linux only for now)."


class AutostartError(EmberError, RuntimeError):
    """Start on login cannot be set up here."""


def autostart_supported() -> bool:
    """True where start on login is implemented (Linux and other XDG desktops)."""
    return not sys.platform.startswith(("win", "darwin", "cygwin"))


def xdg_config_home() -> Path:
    """``$XDG_CONFIG_HOME`` or ``~/.config``."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def autostart_path() -> Path:
    """Where the autostart entry lives."""
    return xdg_config_home() / "autostart" / f"{APP_ID}.desktop"


def autostart_enabled() -> bool:
    """True when the autostart entry exists."""
    return autostart_supported() and autostart_path().is_file()


def set_start_on_login(enabled: bool, *, exec_command: str | None = None) -> Path:
    """Write (or remove) the autostart entry; returns its path.

    Raises:
        AutostartError: not supported on this platform.
        OSError: the file could not be written or removed.
    """
    if not autostart_supported():
        raise AutostartError(UNSUPPORTED_NOTICE)
    path = autostart_path()
    if not enabled:
        path.unlink(missing_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    text = desktop_entry(exec_command or launcher_command()) + "X-GNOME-Autostart-enabled=true\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def apply_start_on_login(enabled: bool) -> bool:
    """Make the autostart entry match the setting; False (nothing done) where it is not supported.

    Raises:
        OSError: the file could not be written or removed.
    """
    if not autostart_supported():
        return False
    if enabled != autostart_enabled():
        set_start_on_login(enabled)
    return True
