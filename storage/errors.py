"""Known-error types shared by every package.

Known errors come from the environment or the user (a missing file, a full disk, a bad request). Each carries a
message that says what happened and what to do; front ends show that message and nothing else. Anything that is
not an ``EmberError`` is a bug and keeps its traceback.

The base lives in ``storage`` because it is the lowest package: ``models``, ``inference`` and ``app`` all import it.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class EmberError(Exception):
    """Base of every known error: its ``str()`` is the message shown to the user."""


class StorageError(EmberError, OSError):
    """The database could not be opened, read or written."""


class DiskFullError(StorageError):
    """The disk holding the database has no room left: nothing is damaged, and reading still works."""


class ReadOnlyDatabaseError(StorageError, PermissionError):
    """The database (or its folder) cannot be written: a read-only file, folder or file system."""


class DatabaseLockedError(StorageError):
    """Another program holds the database's write lock."""


class DatabaseDamagedError(StorageError):
    """The database file is damaged (not a database, truncated, malformed pages); recovery may save part of it."""


class NotFoundError(EmberError, LookupError):
    """A conversation, message or model that was asked for does not exist."""


def user_message(exc: BaseException, *, doing: str | None = None, already_logged: bool = False) -> str:
    """What a user sees of ``exc``, in the chat window, the loader, a stored failed turn, a download, a background
    job or an API error body: a known error's own message; for a bug, a short apology that names the log file,
    with the traceback written to the log (unless ``already_logged``, e.g. by the engine that emitted it).

    Args:
        exc: what was raised.
        doing: what Ember was doing, for the log line (``"serving GET /v1/models"``).
        already_logged: the traceback is in the log already.
    """
    if isinstance(exc, EmberError):
        return str(exc)
    if not already_logged:
        log.error("bug%s", f" while {doing}" if doing else "", exc_info=exc)
    where = log_file() or "Ember's log"
    return f"Something went wrong inside Ember ({type(exc).__name__}). This is a bug; the details are in {where}."


def log_file() -> str | None:
    """The path of Ember's log file (``app.logs.configure_logging`` marks its handler), or None before logging is
    configured."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "ember_log", False):
            return str(getattr(handler, "baseFilename", None) or "") or None
    return None
