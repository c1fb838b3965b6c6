"""Linux desktop integration: the ``.desktop`` entry and icon under the user's XDG data folder.

``ember install-desktop`` writes them (the packaging script can call it with a prefix); menus and docks then show
Ember with its icon, and the tray and autostart use the same application id.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

from app import APP_ID


def xdg_data_home() -> Path:
    """``$XDG_DATA_HOME`` or ``~/.local/share``."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def launcher_argv() -> list[str]:
    """The program and arguments that start this Ember: the frozen executable, or this Python running ``-m app``."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "app"]


def launcher_command(*, windows: bool = False) -> str:
    """:func:`launcher_argv` as one command line: quoted for a ``.desktop`` file's ``Exec`` (double quotes, as the
    Desktop Entry spec asks), or for Windows (``windows``: the Run key's ``CreateProcess`` rules)."""
    argv = launcher_argv()
    if windows:
        return subprocess.list2cmdline(argv)
    return " ".join(_exec_quote(a) for a in argv)


def _exec_quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    return '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'


def desktop_entry(exec_command: str) -> str:
    """The text of Ember's ``.desktop`` file."""
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Ember\n"
        "GenericName=Local AI chat\n"
        "Comment=Run open-weight language models on this computer\n"
        f"Exec={exec_command}\n"
        f"Icon={APP_ID}\n"
        "Terminal=false\n"
        "Categories=Utility;Development;Chat;\n"
        "Keywords=AI;LLM;chat;llama;GGUF;\n"
        f"StartupWMClass={APP_ID}\n"
    )


def install_desktop(*, data_home: Path | None = None, exec_command: str | None = None) -> list[Path]:
    """Write the desktop entry and the scalable icon; returns the files written."""
    base = data_home or xdg_data_home()
    entry = base / "applications" / f"{APP_ID}.desktop"
    icon = base / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
    entry.parent.mkdir(parents=True, exist_ok=True)
    icon.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(desktop_entry(exec_command or launcher_command()), encoding="utf-8")
    icon.write_bytes(resources.files("app").joinpath(f"resources/{APP_ID}.svg").read_bytes())
    return [entry, icon]
