"""What the engine reports while it works: token text, load progress, the end of a job, or its failure."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Union


@dataclass(frozen=True)
class GenerationStats:
    """Figures for one reply."""

    prompt_tokens: int
    cached_tokens: int  # prompt tokens reused from the KV cache, not evaluated
    completion_tokens: int
    ttft_ms: float  # job start to the first generated token
    prompt_ms: float  # evaluating the uncached part of the prompt
    tokens_per_s: float  # generation speed after the first token
    total_ms: float
    finish_reason: str  # "stop" | "length" | "cancelled" | "repetition" (a verbatim loop, see inference.repetition)
    # Speculative decoding only (None otherwise): drafter kind, drafted and accepted tokens, acceptance rate,
    # mean accepted drafts per verify round, time spent drafting and verifying, verify calls.
    speculative: str | None = None  # "draft" | "lookup"
    drafted: int | None = None
    accepted: int | None = None
    acceptance_rate: float | None = None
    mean_accepted_length: float | None = None
    draft_ms: float | None = None
    verify_ms: float | None = None
    verify_calls: int | None = None
    # Long conversations (None when nothing was dropped): oldest messages left out of the prompt to fit the
    # context, and context shifts made while the reply was written.
    trimmed_messages: int | None = None
    context_shifts: int | None = None
    # Routing (None when no router ran): which tier answered and why, read by the GUI badge, the CLI and the
    # API: {"tier", "policy", "escalated", "model", "score", "threshold", "decision_ms", "error"}.
    router: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The figures as a dict (fields that do not apply, None, are left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def reply_stats(*, prompt_tokens: int, cached_tokens: int, completion_tokens: int, decoded: int, started: float,
                prompt_ms: float, first: float | None, last: float | None, end: float, finish_reason: str,
                **extra: Any) -> GenerationStats:
    """The stats of a finished reply from its clock readings (``time.perf_counter()`` values).

    ``decoded`` counts the tokens produced between the first and the last token's time, which sets the rate.
    """
    span = (last - first) if first is not None and last is not None else 0.0
    return GenerationStats(
        prompt_tokens=prompt_tokens, cached_tokens=cached_tokens, completion_tokens=completion_tokens,
        ttft_ms=round(((first or end) - started) * 1000, 2), prompt_ms=round(prompt_ms, 2),
        tokens_per_s=round(decoded / span, 2) if decoded and span > 0 else 0.0,
        total_ms=round((end - started) * 1000, 2), finish_reason=finish_reason, **extra,
    )


@dataclass(frozen=True)
class TokenText:
    """New reply text (one or more tokens' worth)."""

    text: str


@dataclass(frozen=True)
class Retracted:
    """The reply text streamed so far is withdrawn and the text that follows replaces it (the router's ``cascade``
    streamed the small model's answer, then escalated). Only consumers that ask for it receive this."""

    reason: str


@dataclass(frozen=True)
class LoadProgress:
    """Model load progress, 0..1."""

    fraction: float


@dataclass(frozen=True)
class Finished:
    """The job ended; ``result`` is job-specific (the reply text for generation)."""

    result: Any = None
    stats: GenerationStats | None = None


@dataclass(frozen=True)
class Failed:
    """The job failed; ``error`` is a known ``EmberError`` or, for a bug, any exception."""

    error: BaseException


EngineEvent = Union[TokenText, Retracted, LoadProgress, Finished, Failed]
