"""Sampling options, declared once with their bounds and meaning."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SamplingOptions(BaseModel):
    """How the next token is picked. The same options shape every generation path."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    temperature: float = Field(0.7, ge=0.0, le=5.0, description="Randomness; 0 always picks the likeliest token.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Keep the smallest set of tokens with this total "
                                                             "probability (1 turns it off).")
    top_k: int = Field(40, ge=0, le=1000, description="Keep only the K likeliest tokens (0 turns it off).")
    min_p: float = Field(0.05, ge=0.0, le=1.0, description="Drop tokens less likely than this fraction of the "
                                                            "likeliest one (0 turns it off).")
    repeat_penalty: float = Field(1.0, ge=0.5, le=2.0, description="Penalty on recently used tokens "
                                                                   "(1 turns it off).")
    repeat_last_n: int = Field(64, ge=0, le=4096, description="How many recent tokens the repeat penalty "
                                                              "looks at.")
    dry_multiplier: float = Field(0.0, ge=0.0, le=5.0, description="DRY: penalise tokens that would extend a "
                                                                   "sequence repeated from the last 64 tokens "
                                                                   "(0 turns it off; 0.8 is usual; no "
                                                                   "speculative decoding while it is on).")
    seed: int | None = Field(None, ge=0, le=2**32 - 2, description="Random seed for reproducible replies "
                                                                   "(empty: a new seed each time).")
    max_tokens: int = Field(512, ge=1, le=131072, description="Longest reply, in tokens.")
    stop: list[str] = Field(default_factory=list, description="Strings that end the reply when generated.")
    stop_loops: bool = Field(True, description="End a reply that has turned into a verbatim loop (the same "
                                               "words again and again); turn off to allow deliberate repetition.")
    ignore_eos: bool = Field(False, description="Never end the reply on the model's end-of-text token, only at "
                                                "max_tokens or a stop string (benchmarks and tests that need "
                                                "an exact length; llama-server's ignore_eos).")


def bounds(name: str) -> dict[str, Any]:
    """The bounds :class:`SamplingOptions` declares for the option ``name`` (``ge``/``gt``/``le``/``lt``)."""
    found: dict[str, Any] = {}
    for constraint in SamplingOptions.model_fields[name].metadata:
        for key in ("ge", "gt", "le", "lt"):
            if getattr(constraint, key, None) is not None:
                found[key] = getattr(constraint, key)
    return found


def optional_field(name: str, **override: Any) -> Any:
    """An optional request field (``None``: the settings' value) for the option ``name``, with its declared
    bounds; ``override`` narrows one where an API shape has its own (OpenAI's ``temperature`` stops at 2)."""
    return Field(None, **{**bounds(name), **override})


MAX_TOKENS_LIMIT: int = bounds("max_tokens")["le"]  # the longest reply any request may ask for
