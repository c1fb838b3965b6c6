"""The ASGI application: routes, security middleware and error handlers."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__
from app.api import anthropic_routes, ollama_routes, openapi, openai_routes, responses_routes
from app.api.context import ApiContext
from app.api.errors import ApiError, bug_response, error_response, from_known
from app.api.security import Guard, SecurityMiddleware
from storage.errors import EmberError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 400: "invalid_request"}


def create_app(ctx: ApiContext, *, bound_host: str, token: Callable[[], str | None]) -> FastAPI:
    """The API application for ``ctx`` (one per server); ``token`` returns the token to require (None: auth off)."""
    app = FastAPI(title="Ember local API", version=__version__, docs_url=None, redoc_url=None,
                  description="OpenAI-, Anthropic- and Ollama-compatible API of Ember, serving the models of its library.")
    app.state.ctx = ctx
    app.state.guard = Guard(ctx.live_settings, token, bound_host)
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(SecurityMiddleware, guard=app.state.guard)  # the outermost: it runs first
    app.include_router(openai_routes.router)
    app.include_router(responses_routes.router)
    app.include_router(anthropic_routes.router)
    app.include_router(ollama_routes.router)
    openapi.install(app, token)

    @app.get("/", include_in_schema=False)
    async def root() -> PlainTextResponse:
        return PlainTextResponse("Ember is running")

    @app.get("/health", summary="Whether Ember is up; with the token, the loaded models and the request queue",
             responses=openapi.responses("openai", (403,)))
    async def health(request: Request) -> dict[str, Any]:
        if not app.state.guard.token_ok(request.headers.get("authorization"), request.headers.get("x-api-key")):
            return {"status": "ok"}  # private by default: no file paths or queue without the token
        loaded = ctx.core.engine.loaded
        engine = ctx.core.engine.snapshot()
        return {"status": "ok", "version": __version__, "model": loaded.name if loaded else None,
                "auth": token() is not None, "queue": ctx.scheduler.snapshot(), "engine": engine,
                "models": engine["models"]}

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(EmberError)
    async def on_known(request: Request, exc: EmberError) -> JSONResponse:
        return error_response(from_known(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Bad request."
        if exc.status_code == 404 and message == "Not Found":
            message = f"There is no route {request.method} {request.url.path} in Ember's API."
        err = ApiError(exc.status_code, message, code=_HTTP_CODES.get(exc.status_code),
                       headers=dict(exc.headers or {}))
        return error_response(err, request.url.path)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        return bug_response(request, exc)

    return app


class JsonBodyMiddleware:
    """Reads every request body as JSON whatever its ``Content-Type`` says: ``curl -d`` sends JSON as
    ``application/x-www-form-urlencoded``, and some clients send ``text/plain`` or none. Every route of the API
    takes JSON (none takes a form), so the header is set to ``application/json``; a body that is not JSON is then
    the usual 400 naming the JSON error. (A web page's form post is still refused by the Origin check.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            kept = [v for k, v in scope["headers"] if k == b"content-type"]
            if not kept or not _is_json(kept[0].decode("latin-1")):
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def validation_error(exc: RequestValidationError) -> ApiError:
    """A 400 naming the first invalid field, in words a client developer understands."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error", "invalid JSON")
        return ApiError(400, f"The request body is not valid JSON ({detail}).", code="invalid_json")
    param = ".".join(loc) or None
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return ApiError(400, "Invalid request: " + "; ".join(parts), code="invalid_value", param=param)
