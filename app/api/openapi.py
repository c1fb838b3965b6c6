"""The served OpenAPI document, kept true: the statuses each route really answers with the error body of its API
shape, the streaming media types, and the bearer token (or ``x-api-key``) the security middleware asks for.

FastAPI's own document lists only 200 and 422 (Ember answers validation errors with 400 in the route's shape, see
``app.validation_error``) and no security; :func:`install` rewrites what the routes declare through
:func:`responses` into the document the server serves at ``/openapi.json``.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from app.api.security import PUBLIC_PATHS

Shape = Literal["openai", "anthropic", "ollama"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenAIErrorDetail(_Closed):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(_Closed):
    """OpenAI's error body (``/v1/...`` except ``/v1/messages``)."""

    error: OpenAIErrorDetail


class AnthropicErrorDetail(_Closed):
    type: str
    message: str


class AnthropicError(_Closed):
    """Anthropic's error body (``/v1/messages``)."""

    type: Literal["error"]
    error: AnthropicErrorDetail


class OllamaError(_Closed):
    """Ollama's error body (``/api/...``): the message as a string."""

    error: str


_ERROR_MODELS: dict[Shape, type[BaseModel]] = {"openai": OpenAIError, "anthropic": AnthropicError,
                                               "ollama": OllamaError}

_WHY = {
    400: "The request is invalid or asks for something Ember does not support; the message names the field.",
    401: "No valid API token: send 'Authorization: Bearer <token>' (or 'x-api-key: <token>').",
    403: "The Host header or the web origin is not allowed.",
    404: "The model is not in Ember's library.",
    413: "The request body is larger than the API's limit.",
    500: "Ember failed itself (its database, files or keyring), or a bug; the message says which.",
    503: "The queue is full, or the model cannot be loaded.",
    504: "The request took longer than the API's timeout and was cancelled.",
}

# What every route behind the token may answer, and what a generation route may answer besides.
GUARDED = (401, 403, 500)
GENERATION = (400, 401, 403, 404, 413, 500, 503, 504)

STREAM_TYPES: dict[Shape, str] = {"openai": "text/event-stream", "anthropic": "text/event-stream",
                                  "ollama": "application/x-ndjson"}

# What one item of a stream is: a server-sent event (its data is JSON, or ``[DONE]`` ending an OpenAI stream), or
# one JSON object a line.
_STREAM_ITEMS: dict[str, dict[str, Any]] = {
    "text/event-stream": {"type": "object", "required": ["data"],
                          "properties": {"event": {"type": "string"}, "data": {"type": "string"}}},
    "application/x-ndjson": {"type": "object"},
}

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "The API token: `ember serve` prints it, the desktop app shows it in its settings."},
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key",
                   "description": "The API token as Anthropic's clients send it."},
}
_REQUIRED_AUTH = [{"bearerAuth": []}, {"apiKeyAuth": []}]


def responses(shape: Shape, statuses: tuple[int, ...] = GUARDED, *, stream: bool = False) -> dict[int | str, Any]:
    """A route's ``responses=``: each of ``statuses`` with the error body of ``shape``, and when ``stream`` the
    stream's media type beside JSON for the 200."""
    out: dict[int | str, Any] = {status: {"model": _ERROR_MODELS[shape], "description": _WHY[status]}
                                 for status in statuses}
    if stream:
        kind = "Server-sent events" if STREAM_TYPES[shape] == "text/event-stream" else "Newline-delimited JSON"
        out[200] = {"description": f"The reply as one JSON object, or streamed ({kind}) when 'stream' is true.",
                    "content": {"application/json": {"schema": {"type": "object"}},
                                STREAM_TYPES[shape]: {"schema": _STREAM_ITEMS[STREAM_TYPES[shape]]}}}
    return out


def install(app: FastAPI, token: Callable[[], str | None]) -> None:
    """Serve the true document at ``/openapi.json``: no 422 (validation errors are 400s) and, while auth is on
    (``token`` returns one), the bearer and ``x-api-key`` schemes on every route outside ``PUBLIC_PATHS``;
    ``/health`` takes the token optionally (with it, the full report)."""
    built: dict[str, Any] = {}

    def document() -> dict[str, Any]:
        if not built:
            built.update(_without_422(FastAPI.openapi(app)))
        doc = copy.deepcopy(built)
        if token() is not None:
            doc.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in doc["paths"].items():
                for operation in operations.values():
                    operation["security"] = [{}, *_REQUIRED_AUTH] if path in PUBLIC_PATHS else _REQUIRED_AUTH
        return doc

    app.openapi = document  # type: ignore[method-assign]


def _without_422(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without FastAPI's 422 responses and their schemas (Ember never answers 422)."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc
