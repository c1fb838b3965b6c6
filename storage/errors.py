"""Known-error types shared by every package.

Known errors come from the environment or the user (a missing file, a full disk, a bad request). Each carries a
message that says what happened and what to do; front ends show that message and nothing else. Anything that is
not an ``EmberError`` is a bug and keeps its traceback.

The base lives in ``storage`` because it is the lowest package: ``models``, ``inference`` and ``app`` all import it.
"""

from __future__ import annotations


class EmberError(Exception):
    """Base of every known error: its ``str()`` is the message shown to the user."""


class StorageError(EmberError, OSError):
    """The database could not be opened, read or written."""


class NotFoundError(EmberError, LookupError):
    """A conversation, message or model that was asked for does not exist."""
