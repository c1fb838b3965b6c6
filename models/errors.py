"""Known errors about model files and the library."""

from __future__ import annotations

from storage.errors import EmberError


class ModelFileError(EmberError, OSError):
    """A model file is missing, unreadable, truncated or not a GGUF file."""


class ModelNotFoundError(EmberError, LookupError):
    """No library model has the name that was asked for."""
