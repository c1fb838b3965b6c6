"""API errors: known errors become OpenAI-shaped JSON with the right status; bugs become a logged 500.

OpenAI routes answer ``{"error": {"message", "type", "param", "code"}}``; the Ollama routes (``/api/...``) answer
``{"error": "message"}`` as Ollama does, because Ollama clients read the error as a string; Anthropic's
``/v1/messages`` answers ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from inference.errors import EngineError, LoadCancelled, ModelLoadError
from models.errors import ModelFileError, ModelNotFoundError
from storage.errors import EmberError, StorageError, user_message
from storage.secrets import SecretStoreError

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error", 429: "rate_limit_error", 499: "cancelled", 503: "server_busy",
          504: "timeout", 500: "server_error"}


class ApiError(EmberError, ValueError):
    """A request the API refuses: carries the HTTP status and OpenAI's ``code``/``param``."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers or {}


def from_known(exc: EmberError) -> ApiError:
    """The API error for a known Ember error raised while serving a request: Ember's own failures (its database or
    files, the keyring) are 500s, errors about the request or the settings 400s; the message stays the same."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ModelNotFoundError):
        return ApiError(404, str(exc), code="model_not_found", param="model")
    if isinstance(exc, ModelFileError):
        return ApiError(503, str(exc), code="model_unavailable", param="model")
    if isinstance(exc, (ModelLoadError, LoadCancelled)):
        return ApiError(503, str(exc), code="model_load_failed", param="model")
    if isinstance(exc, StorageError):
        return ApiError(500, str(exc), code="storage_error")
    if isinstance(exc, SecretStoreError):
        return ApiError(500, str(exc), code="secret_store_error")
    if isinstance(exc, EngineError):
        return ApiError(400, str(exc), code="engine_error")
    return ApiError(400, str(exc))


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    503: "overloaded_error", 504: "timeout_error"}


def error_body(err: ApiError, *, ollama: bool = False, anthropic: bool = False) -> dict:
    """The JSON body for ``err`` in OpenAI's shape (or Ollama's, or Anthropic's)."""
    if ollama:
        return {"error": str(err)}
    if anthropic:
        kind = _ANTHROPIC_TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": str(err)}}
    return {"error": {"message": str(err), "type": _TYPES.get(err.status, "invalid_request_error"),
                      "param": err.param, "code": err.code}}


def is_ollama(path: str) -> bool:
    """True for the Ollama-compatible routes."""
    return path.startswith("/api/")


def is_anthropic(path: str) -> bool:
    """True for the Anthropic-compatible routes (``/v1/messages``)."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def error_response(err: ApiError, path: str) -> JSONResponse:
    """A JSON response for ``err`` in the shape the route's clients expect."""
    return JSONResponse(error_body(err, ollama=is_ollama(path), anthropic=is_anthropic(path)),
                        status_code=err.status, headers=err.headers)


def bug_response(request: Request, exc: BaseException) -> JSONResponse:
    """A 500 for a bug: the traceback goes to the log, never to the client."""
    err = internal_error(exc, doing=f"serving {request.method} {request.url.path}")
    return error_response(err, request.url.path)


def internal_error(exc: BaseException, *, doing: str | None = None, already_logged: bool = False) -> ApiError:
    """The 500 for a bug (:func:`storage.errors.user_message`: an apology naming the log, the traceback logged)."""
    return ApiError(500, user_message(exc, doing=doing, already_logged=already_logged), code="internal_error")
