"""Known errors raised by the engine."""

from __future__ import annotations

from storage.errors import EmberError


class EngineError(EmberError, RuntimeError):
    """The engine could not do what was asked (no model loaded, context full, decode failed)."""


class ModelLoadError(EmberError, RuntimeError):
    """llama.cpp refused to load a model (too large for memory, unsupported architecture, ...)."""


class LoadCancelled(EmberError, RuntimeError):
    """A model load was cancelled by the user."""
