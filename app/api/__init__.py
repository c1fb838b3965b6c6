"""Ember's local HTTP API: OpenAI- and Ollama-compatible routes served by uvicorn in a background thread."""

from app.api.server import ApiServer, ApiServerError

__all__ = ["ApiServer", "ApiServerError"]
