"""Known errors about model files and the library."""

from __future__ import annotations

from storage.errors import EmberError


class ModelFileError(EmberError, OSError):
    """A model file is missing, unreadable, truncated or not a GGUF file."""


class ModelNotFoundError(EmberError, LookupError):
    """No library model has the name that was asked for."""


class HubError(EmberError, ConnectionError):
    """The Hub could not be reached or answered with an unexpected error."""


class HubAccessError(EmberError, PermissionError):
    """A gated or private repository refused access (no token, or the token lacks access)."""


class HubNotFoundError(EmberError, LookupError):
    """The Hub has no such repository, revision or file."""


class DownloadError(EmberError, OSError):
    """A download failed (after its retries); the message says whether it can be resumed."""


class ChecksumError(DownloadError):
    """A downloaded file's sha256 differs from the Hub's record; the bad data was removed."""


class DiskSpaceError(EmberError, OSError):
    """Not enough free disk space for a download or copy."""
