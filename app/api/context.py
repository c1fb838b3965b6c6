"""What the routes share: the engine and library (through the composition root), the live settings and the queue."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import ValidationError

from app.api.errors import ApiError
from app.api.jobs import ApiJob, Scheduler
from app.core import Ember
from app.routing import api_route
from app.services.surface import router_of
from app.settings import ApiSettings, describe_validation
from inference.engine import ModelSpec
from inference.sampling import SamplingOptions
from inference.tools import ToolRequest
from models.errors import ModelNotFoundError
from models.library import LibraryModel


@dataclass
class ApiContext:
    """State of one running API server (the server itself holds the token; see ``app.state.guard``).

    Args:
        live_settings: returns the API settings in force.
    """

    core: Ember
    live_settings: Callable[[], ApiSettings]
    scheduler: Scheduler
    started: float = field(default_factory=time.time)
    api_models: set[str] = field(default_factory=set)  # models loaded because an API request asked for them

    @property
    def settings(self) -> ApiSettings:
        """The API settings in force now."""
        return self.live_settings()

    def model(self, name: str) -> LibraryModel:
        """A library model by name or alias (never a file path: clients may only use what the user installed).

        Raises:
            ApiError: 404 when the library has no such model.
        """
        try:
            return self.core.library.get(name)
        except ModelNotFoundError:
            known = ", ".join(m.name for m in self.core.library.list()) or "none"
            raise ApiError(404, f"The model {name!r} is not in Ember's library (installed: {known}). "
                                "GET /v1/models lists the names you can use.",
                           code="model_not_found", param="model") from None

    def spec(self, name: str) -> tuple[LibraryModel, ModelSpec]:
        """The library model and its load spec. When another model (or none) is loaded, the request's job will load
        it, so it is remembered as the API's (for the idle keep-alive); a model the desktop loaded is never the
        API's to unload."""
        model = self.model(name)
        spec = self.core.spec_for(model)
        loaded = self.core.engine.loaded
        if loaded is None or loaded.name != spec.name:
            self.api_models.add(spec.name)
        return model, spec

    def sampling(self, **overrides: Any) -> SamplingOptions:
        """The user's default sampling options with the request's values on top (None values ignored).

        Raises:
            ApiError: 400 naming the field that is out of bounds.
        """
        updates = {k: v for k, v in overrides.items() if v is not None}
        base = self.core.settings.sampling
        try:
            return SamplingOptions.model_validate({**base.model_dump(), **updates})
        except ValidationError as exc:
            first = exc.errors()[0]["loc"]
            raise ApiError(400, f"Invalid sampling option: {describe_validation(exc)}",
                           param=str(first[0]) if first else None, code="invalid_value") from None

    def submit_chat(self, messages: list[dict[str, Any]], options: SamplingOptions, model: LibraryModel,
                    spec: ModelSpec, *, grammar: str | None = None, routing: Any = None,
                    tools: ToolRequest | None = None, logprobs: int | None = None) -> ApiJob:
        """Queue a chat reply: on the engine, or through the router when the request's ``ember`` field (or the
        router settings) asks for it; the request's model is then the small tier. Constrained output (a grammar),
        tool calls and log-probabilities are never routed: the large tier may not honour them. Messages may carry
        tool calls and results (see ``EngineService.chat``).

        Raises:
            RouterError: an unknown policy or tier.
        """
        plain = grammar is None and tools is None and logprobs is None \
            and not any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
        route = api_route(self.core, routing and routing.router, routing and routing.tier) if plain else None
        if route is None:
            return self.scheduler.submit(
                lambda cb: self.core.engine.chat(messages, options, model=spec, on_event=cb, grammar=grammar,
                                                 tools=tools, logprobs=logprobs),
                model=model.name, kind="chat")
        return self.scheduler.submit(  # see app/routing.py
            lambda cb: router_of(self.core).start(messages, options, small=spec, policy=route[0], forced=route[1],
                                              on_event=cb), model=model.name, kind="chat")


def stop_list(stop: str | list[str] | None) -> list[str] | None:
    """OpenAI's ``stop`` (a string or a list) as a list."""
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)
