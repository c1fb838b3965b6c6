"""Private by default: Ember's data folders are 0700 and its database files 0600 on POSIX, whatever the umask.

Chats, attachments and saved model states are the user's alone; other local users must not read them. New folders
and files get the private mode when they are created; existing ones lose their group and other bits when opened
(so a data folder made by an older Ember is tightened on the next start). Elsewhere (Windows) nothing is changed:
a user's profile folder is private there already.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def applies() -> bool:
    """Whether modes are set here (POSIX only)."""
    return os.name == "posix"


def private_dir(folder: Path) -> Path:
    """Create ``folder`` (and missing parents, with the usual modes) as 0700, or tighten it if it exists."""
    created = not folder.exists()
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if applies():
        _set_mode(folder, DIR_MODE if created else None)
    return folder


def private_file(path: Path) -> Path:
    """Create ``path`` empty as 0600 if it is missing, or tighten it if it exists; never truncates it."""
    if applies():
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        except FileExistsError:
            _set_mode(path, None)
        else:
            os.close(fd)
            _set_mode(path, FILE_MODE)  # the umask may have taken bits away: 0600 exactly
    else:
        path.touch(exist_ok=True)
    return path


def tighten(path: Path) -> None:
    """Take the group and other bits off ``path`` if it exists (a database's -wal and -shm files)."""
    if applies() and path.exists():
        _set_mode(path, None)


def _set_mode(path: Path, mode: int | None) -> None:
    """Set ``mode``, or (None) clear the group and other bits of the current one; a file that is not ours (or a
    read-only file system) keeps its mode, which is logged."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        wanted = mode if mode is not None else current & ~0o077
        if wanted != current:
            os.chmod(path, wanted)
    except OSError as exc:
        log.warning("could not make %s private (%s); other users of this machine may be able to read it",
                    path, exc.strerror or exc)
