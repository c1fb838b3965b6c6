"""The router says why: the score, the threshold and the signals that pushed the score most, as the CLI, the
desktop footer and the ``X-Ember-Route`` header show them (read from a reply's ``stats["router"]``)."""

from __future__ import annotations

import re
from typing import Any, Mapping

# Readable names of the router's signals (inference.route_signals), for the desktop; the CLI and the API use the raw
# names. A product ``a*b`` reads as "a × b"; a signal missing here shows its raw name.
SIGNAL_LABELS: dict[str, str] = {
    "log_words": "length", "code": "code", "math": "math", "numbers": "numbers", "multi_step": "several steps",
    "units": "units", "wordplay": "wordplay", "fact": "a fact", "how_many": "counting", "yes_no": "yes/no",
    "non_ascii": "non-ASCII text", "lines": "lines",
    "glimpse_prob_first": "first-token confidence", "glimpse_prob_min": "lowest glimpse confidence",
    "glimpse_entropy_mean": "glimpse uncertainty",
    "answer_entropy_mean": "answer uncertainty", "answer_entropy_max": "peak answer uncertainty",
    "answer_logprob_mean": "answer confidence", "answer_logprob_min": "lowest answer confidence",
    "answer_margin_min": "closest answer tie", "answer_tokens": "answer length",
}

_HEADER_UNSAFE = re.compile(r"[^A-Za-z0-9_*.\-]")  # in a signal name of the header
_VALUE_UNSAFE = re.compile(r"[^\x21-\x7e]|;")  # in a model name: printable ASCII, no separator


def why_of(router: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The ``(signal, push)`` pairs of a stored ``router`` stats entry (empty when it has none)."""
    out: list[tuple[str, float]] = []
    for item in router.get("why") or ():
        try:
            out.append((str(item["signal"]), float(item["push"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def signal_label(name: str) -> str:
    """The readable name of signal ``name`` (raw when unknown)."""
    return " × ".join(SIGNAL_LABELS.get(part, part) for part in name.split("*"))


def why_text(why: list[tuple[str, float]], *, readable: bool = False) -> str:
    """``"numbers +0.41, glimpse_prob_first -0.20"`` (readable names with ``readable``)."""
    return ", ".join(f"{signal_label(n) if readable else n} {push:+.2f}" for n, push in why)


def why_header(why: list[tuple[str, float]]) -> str:
    """``"numbers:+0.41,glimpse_prob_first:-0.20"``: raw names, header-safe ASCII."""
    return ",".join(f"{_HEADER_UNSAFE.sub('_', n)}:{push:+.2f}" for n, push in why)


def router_line(router: Mapping[str, Any]) -> str:
    """One line for ``ember chat -v``, e.g. ``router: small (auto) score 0.31 < threshold 0.42 — top signals:
    numbers +0.41, glimpse_prob_first -0.20``; a forced turn says only its tier."""
    line = f"router: {router.get('tier')} ({router.get('policy')})"
    score, threshold = router.get("score"), router.get("threshold")
    if score is not None and threshold is not None:
        op = ">=" if float(score) >= float(threshold) else "<"
        line += f" score {float(score):.2f} {op} threshold {float(threshold):.2f}"
    elif score is not None:
        line += f" score {float(score):.2f}"
    if router.get("learned"):
        line += " (learned weights)"
    why = why_of(router)
    if why:
        line += f" — top signals: {why_text(why)}"
    return line


def route_header(router: Mapping[str, Any]) -> str:
    """The ``X-Ember-Route`` value, e.g. ``small; policy=auto; model=default; score=0.310; threshold=0.420;
    why=numbers:+0.41,glimpse_prob_first:-0.20`` (ASCII only)."""
    model = _VALUE_UNSAFE.sub("_", str(router.get("model", "")))
    out = f"{router['tier']}; policy={router['policy']}; model={model}"
    if router.get("score") is not None:
        out += f"; score={float(router['score']):.3f}"
    if router.get("threshold") is not None:
        out += f"; threshold={float(router['threshold']):.3f}"
    why = why_of(router)
    if why:
        out += f"; why={why_header(why)}"
    if router.get("error"):
        out += "; error=large-tier-failed"
    return out
