"""What a conversation remembers of its own (system prompt, sampling, routing, tools), declared once, and the one
rule for the sampling a continued conversation's turn uses, the same in the desktop and ``ember chat``.

The rule: **a turn uses the conversation's stored sampling (the settings' sampling when it has none), with the
options given explicitly for that turn (``ember chat --temperature ...``) on top; those are not stored.** A new
conversation stores the sampling it was started with. The local API has no conversations: each request's options
go over the settings' sampling.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inference.router import Policy
from inference.sampling import SamplingOptions

log = logging.getLogger(__name__)


class ConversationSettings(BaseModel):
    """A conversation's own settings (stored as JSON in ``conversations.settings``); keys this declaration does
    not know are kept as they are."""

    model_config = ConfigDict(extra="allow")

    system_prompt: str | None = Field(None, description="The system prompt sent before the turns (None or '': "
                                                        "none).")
    sampling: SamplingOptions | None = Field(None, description="The sampling its turns use (None: the "
                                                               "settings').")
    router: Policy | None = Field(None, description="Its routing policy, saved by a routed turn (None: the "
                                                    "router settings').")
    router_large: str | None = Field(None, description="Its large tier (None: the router settings').")
    mcp_servers: list[str] | None = Field(None, description="The MCP servers whose tools it may call.")
    mcp_always: list[str] | None = Field(None, description="Tools allowed without asking.")
    tool_choice: str | None = Field(None, description="How the model may use tools: auto, required or none.")

    @field_validator("sampling", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None  # an empty stored sampling: the settings' (as before it was typed)

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None, *, conversation_id: int | None = None) -> "ConversationSettings":
        """Read stored settings; a value that no longer validates (a sampling option out of today's bounds) is
        dropped, with a log line, so the conversation falls back to the settings for it."""
        data = dict(stored or {})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            log.info("conversation %s: stored %s invalid; using the settings instead", conversation_id,
                     ", ".join(sorted(bad)))
            return cls.model_validate({k: v for k, v in data.items() if k not in bad})

    def stored(self) -> dict[str, Any]:
        """The JSON-ready dict to store (None values left out)."""
        return self.model_dump(mode="json", exclude_none=True)


def turn_sampling(base: SamplingOptions, stored: Mapping[str, Any] | None, *,
                  conversation_id: int | None = None) -> SamplingOptions:
    """The sampling a turn of a conversation starts from (the rule above, before any explicit options): its
    stored sampling, else ``base`` (the settings' sampling)."""
    own = ConversationSettings.of(stored, conversation_id=conversation_id).sampling
    return own if own is not None else base
