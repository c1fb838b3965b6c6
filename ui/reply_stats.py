"""What a reply's footer says, from the stats stored with it (speed, first-token time, draft, router tier)."""

from __future__ import annotations

from typing import Any

from app.services.route_explain import why_of, why_text

_FINISH = {"cancelled": "stopped", "length": "length limit reached", "repetition": "stopped: repeating itself",
           "error": "failed", "interrupted": "interrupted: Ember stopped before the reply ended"}


def footer_text(stats: dict[str, Any]) -> str:
    """A one-line summary such as ``48 tokens · 121.4 tok/s · first token 38 ms · draft 72% accepted``."""
    parts: list[str] = []
    tokens = stats.get("completion_tokens")
    if tokens is not None:
        parts.append(f"{tokens} tokens")
    speed = stats.get("tokens_per_s")
    if speed:
        parts.append(f"{speed:.1f} tok/s")
    ttft = stats.get("ttft_ms")
    if ttft is not None:
        parts.append(f"first token {ttft:.0f} ms")
    acceptance = draft_acceptance(stats)
    if acceptance is not None:
        parts.append(f"{stats.get('speculative') or 'draft'} {acceptance:.0%} accepted")
    finish = _FINISH.get(stats.get("finish_reason", ""))
    if finish:
        parts.append(finish)
    return " · ".join(parts)


def draft_acceptance(stats: dict[str, Any]) -> float | None:
    """The fraction of drafted tokens the target model accepted, when speculation ran."""
    rate = stats.get("acceptance_rate")  # GenerationStats.as_dict(), as stored with the message
    return float(rate) if rate is not None else None


def tier_badge(stats: dict[str, Any]) -> tuple[str, str] | None:
    """``(badge text, hover text)`` for the router tier that answered, or None when no router ran."""
    router = stats.get("router")
    if not isinstance(router, dict):
        return None
    tier = router.get("tier")
    if not tier:
        return None
    escalated = bool(router.get("escalated"))
    text = f"{tier} ↑" if escalated else str(tier)
    hover = [f"Answered by the {tier} tier" + (" after escalation" if escalated else "")]
    score, threshold = router.get("score"), router.get("threshold")
    if score is not None and threshold is not None:
        op = "≥" if float(score) >= float(threshold) else "<"
        hover.append(f"router score {float(score):.2f} {op} threshold {float(threshold):.2f}"
                     + (" (learned from your choices)" if router.get("learned") else ""))
    elif score is not None:
        hover.append(f"router score {float(score):.2f}")
    why = why_of(router)
    if why:
        hover.append(f"top signals: {why_text(why, readable=True)}")
    model = router.get("model")
    if model:
        hover.append(f"model {model}")
    return text, "; ".join(hover)
