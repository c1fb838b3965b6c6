"""Cheap signals for the router: features of the prompt, and the small model's own uncertainty.

Two kinds of signal feed the escalation score (:mod:`inference.router`):

- **prompt features**, read from the text alone (length, code, arithmetic, multi-step wording, non-English text);
- **model uncertainty**: entropy, log-probability and top-2 margin of the tokens the small model generates. The
  *glimpse* decodes only the first few answer tokens and then rolls the KV cache back to the prompt, so when the
  small model keeps the query its prefill is reused and the glimpse has cost a few tokens. ``cascade`` uses the
  same statistics over the whole small answer (:func:`probe_steps`). Both are the engine's one decode loop with an
  observer on its logits, so they batch with other sequences like any reply.

Everything here runs on the engine's worker thread (it touches the llama.cpp context) and imports no Qt.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generator, Sequence

import llama_cpp
import numpy as np

from inference.events import GenerationStats
from inference.generate import generate_steps
from inference.llama_model import LlamaModel
from inference.sampling import SamplingOptions
from inference.steps import Request, drive

if TYPE_CHECKING:
    from inference.kv_state import StateCache

Features = dict[str, float]

GREEDY = SamplingOptions(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)

_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|\bfunction\b|#include|\bimport \w|=>|</?\w+>|\w+\(\)",
                   re.M)
_MATH_OPS = re.compile(r"\d\s*[-+*/x×÷^%]\s*\d|\bsquare root\b|\bpercent\b|\bsum of\b|\bproduct of\b|"
                       r"\bplus\b|\bminus\b|\btimes\b|\bdivided\b|\bmultipl\w*|\bsquared\b|\bcubed\b", re.I)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_STEPS = re.compile(r"\bstep[- ]by[- ]step\b|\bfirst\b.*\bthen\b|\bexplain\b|\bwhy\b|\bprove\b|\bcompare\b|"
                    r"\banalyz|\banalys|\bderive\b|\bif\b.*\b(?:how|what)\b|\beach\b|\bremain|\bleft\b|\bafter\b|"
                    r"\bbefore\b|\bolder\b|\byounger\b|\bfaster\b|\btaller\b", re.I)
_UNITS = re.compile(r"\bhow many\b.*\b(?:in an?|in one|per)\b|\b(?:meters?|metres?|centimet\w+|millimet\w+|"
                    r"kilomet\w+|grams?|kilograms?|litres?|liters?|millilit\w+|minutes?|seconds?|hours?|days?|"
                    r"weeks?|months?|years?|inches|feet|foot|yards?|miles?|dozen)\b", re.I)
_SPELL = re.compile(r"\bspell\w*\b|\bletters?\b|\bbackwards?\b|\brhymes?\b|\bsyllables?\b|\bplural\b|"
                    r"\bopposite\b|\bsynonym\b|\bantonym\b|\bword\b", re.I)
_FACT = re.compile(r"^\s*(?:what|who|which|where|when)\s+(?:is|was|are|were|did|wrote|painted|invented|discovered)"
                   r"\b", re.I)
_HOW_MANY = re.compile(r"\bhow (?:many|much|old|far|long)\b", re.I)
_YES_NO = re.compile(r"^\s*(?:is|are|does|do|can|was|were|will|has|have)\b", re.I)


def prompt_features(text: str) -> Features:
    """Features of the user's query, each a float (0/1 flags, or a small magnitude).

    ``log_words`` (length), ``code``, ``math`` (arithmetic operators or words), ``numbers`` (how many figures,
    capped), ``multi_step`` (reasoning or multi-step wording), ``units``, ``wordplay`` (spelling, letters,
    opposites), ``fact`` (a what/who/where question), ``how_many``, ``yes_no``, ``non_ascii`` (share of non-ASCII
    letters: another language or script) and ``lines``.
    """
    words = text.split()
    letters = [c for c in text if c.isalpha()]
    non_ascii = sum(1 for c in letters if ord(c) > 127) / len(letters) if letters else 0.0
    return {
        "log_words": math.log1p(len(words)),
        "code": float(bool(_CODE.search(text))),
        "math": float(bool(_MATH_OPS.search(text))),
        "numbers": float(min(len(_NUMBER.findall(text)), 4)) / 4.0,
        "multi_step": float(bool(_STEPS.search(text))),
        "units": float(bool(_UNITS.search(text))),
        "wordplay": float(bool(_SPELL.search(text))),
        "fact": float(bool(_FACT.search(text))),
        "how_many": float(bool(_HOW_MANY.search(text))),
        "yes_no": float(bool(_YES_NO.search(text))),
        "non_ascii": round(non_ascii, 4),
        "lines": float(min(text.count("\n") + 1, 20)) / 20.0,
    }


@dataclass(frozen=True)
class TokenUncertainty:
    """How sure the model was at one generated position (temperature-1 distribution of its raw logits)."""

    entropy: float  # nats
    logprob: float  # log-probability of the token that was chosen
    margin: float  # probability of the likeliest token minus the second likeliest


def token_uncertainty(logits: np.ndarray, token: int) -> TokenUncertainty:
    """The uncertainty of one logits row, for the ``token`` that was picked."""
    x = np.asarray(logits)
    second, first = (float(v) for v in np.partition(x, -2)[-2:])  # on the raw row, before any copy
    z = x.astype(np.float64) - first  # log-sum-exp form: it runs on every cascade token
    e = np.exp(z)
    total = float(e.sum())
    log_total = math.log(total)
    return TokenUncertainty(entropy=log_total - float(e @ z) / total,
                            logprob=max(float(z[token]) - log_total, math.log(1e-30)),
                            margin=(1.0 - math.exp(second - first)) / total)


_UNCERTAINTY_KEYS = ("entropy_first", "entropy_mean", "entropy_max", "logprob_mean", "logprob_min", "margin_min",
                     "tokens", "prob_first", "prob_mean", "prob_min", "margin_first")


def uncertainty_features(steps: Sequence[TokenUncertainty], prefix: str) -> Features:
    """Summary statistics of a run of positions, named ``{prefix}_...``: first/mean/max entropy, mean/min
    log-probability, min margin, ``{prefix}_tokens`` (log of the count), and the bounded, outlier-free forms
    ``prob_first``/``prob_mean``/``prob_min`` (probability of the chosen token: the argmax, for greedy decoding)
    and ``margin_first`` (top-2 margin at the first position). Empty runs give zeros."""
    if not steps:
        return {f"{prefix}_{k}": 0.0 for k in _UNCERTAINTY_KEYS}
    ent = np.array([s.entropy for s in steps])
    lp = np.array([s.logprob for s in steps])
    mg = np.array([s.margin for s in steps])
    prob = np.exp(lp)
    return {
        f"{prefix}_entropy_first": float(ent[0]),
        f"{prefix}_entropy_mean": float(ent.mean()),
        f"{prefix}_entropy_max": float(ent.max()),
        f"{prefix}_logprob_mean": float(lp.mean()),
        f"{prefix}_logprob_min": float(lp.min()),
        f"{prefix}_margin_min": float(mg.min()),
        f"{prefix}_tokens": math.log1p(len(steps)),
        f"{prefix}_prob_first": float(prob[0]),
        f"{prefix}_prob_mean": float(prob.mean()),
        f"{prefix}_prob_min": float(prob.min()),
        f"{prefix}_margin_first": float(mg[0]),
    }


@dataclass
class Probe:
    """What a probing decode produced: tokens, text, per-position uncertainty and timings."""

    tokens: list[int]
    text: str
    steps: list[TokenUncertainty]
    reused: int  # prompt tokens reused from the KV cache
    prompt_ms: float  # evaluating the uncached part of the prompt
    decode_ms: float  # everything after the prompt (sampling, uncertainty, decode calls)
    finish: str  # "stop" | "length" | "cancelled" | "repetition"
    timings: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    hidden: np.ndarray | None = None  # the last hidden state at the prompt's last token (``"prompt"`` asked)
    hidden_ms: float = 0.0  # what reading it cost (its token evaluated on its own), part of prompt_ms
    hidden_next: np.ndarray | None = None  # the state after the first answer token (read in a decode made anyway)
    stats: GenerationStats | None = None  # the decode loop's own figures


def probe_steps(model: LlamaModel, prompt: Sequence[int], options: SamplingOptions, *, max_tokens: int,
                should_stop: Callable[[], bool] = lambda: False, rollback: bool = False,
                on_text: Callable[[str], None] | None = None, hidden: Sequence[str] = (),
                states: "StateCache | None" = None, keep: int = 4) -> Generator[Request, Any, Probe]:
    """Decode up to ``max_tokens`` answer tokens with the sampler chain of ``options``, measuring how sure the
    model was at every position: the engine's decode loop (:func:`~inference.generate.generate_steps`, so batched
    with other sequences, with context shift and saved states) with an observer on every logits row.

    Args:
        model: the loaded small model, its sequence selected; its cached prefix of ``prompt`` is reused.
        prompt: prompt token ids (chat template applied).
        options: sampling settings (their ``stop`` strings end the answer too; with ``stop_loops`` an answer that
            turns into a verbatim loop ends with finish ``repetition``).
        max_tokens: most tokens to generate.
        should_stop: polled before every token.
        rollback: afterwards drop the generated tokens from the KV cache, so it holds exactly ``prompt``, and put
            the prompt's next-token logits back (the glimpse: the small model's answer then starts from the
            glimpse's prefill without evaluating anything, if it follows before the next decode).
        on_text: called with the answer's text as it is generated (a streamed ``cascade``).
        hidden: which of the model's last hidden states to read for the hidden-state probe
            (:mod:`inference.hidden_probe`): ``"prompt"``, at the prompt's last token (that token is then evaluated
            on its own), and ``"first"``, after the first answer token (in the decode made anyway).
        states, keep: as for :func:`~inference.generate.generate_steps`.

    Raises:
        EngineError: the prompt does not fit or llama.cpp failed.
    """
    tokens: list[int] = []
    steps: list[TokenUncertainty] = []
    parts: list[str] = []
    read: dict[str, tuple[np.ndarray | None, float]] = {}
    seen: list[float] = []  # when each token was sampled
    first: list[np.ndarray] = []
    last_row = [-1]
    n_vocab = model.n_vocab

    def on_logits(token: int, index: int) -> None:
        seen.append(time.perf_counter())
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(model.ctx, index), shape=(n_vocab,))
        if rollback and not first:
            first.append(row.copy())
        last_row[0] = index
        if not model.is_eog(token):
            steps.append(token_uncertainty(row, token))
            tokens.append(token)

    def text(piece: str) -> None:
        parts.append(piece)
        if on_text is not None:
            on_text(piece)

    opts = options.model_copy(update={"max_tokens": max_tokens})
    stats = yield from generate_steps(model, prompt, opts, should_stop=should_stop, on_text=text, keep=keep,
                                      states=states, on_logits=on_logits, hidden=hidden,
                                      on_hidden=lambda where, state, ms: read.__setitem__(where, (state, ms)))
    if rollback:
        model.truncate(len(prompt))
        if first and len(model.tokens) == len(prompt):
            model.restore_next_logits(first[0], last_row[0])
    state, hidden_ms = read.get("prompt", (None, 0.0))
    return Probe(tokens, "".join(parts), steps, stats.cached_tokens, stats.prompt_ms,
                 max(0.0, stats.total_ms - stats.prompt_ms), stats.finish_reason,
                 {"decode_calls": max(0, len(seen) - 1),
                  "decode_calls_ms": (seen[-1] - seen[0]) * 1000 if len(seen) > 1 else 0.0},
                 prompt_tokens=len(prompt), hidden=state, hidden_ms=hidden_ms,
                 hidden_next=read.get("first", (None, 0.0))[0], stats=stats)


OPENING_TOKENS = 12  # tokens of an answer's opening, which the cascade's agreement samples are compared with


def answer_opening(model: LlamaModel, tokens: Sequence[int], n: int = OPENING_TOKENS) -> str:
    """The text of an answer's first ``n`` tokens."""
    return b"".join(model.piece(t) for t in tokens[:n]).decode("utf-8", "replace")


def glimpse_steps(model: LlamaModel, prompt: Sequence[int], *, n_tokens: int = 2,
                  should_stop: Callable[[], bool] = lambda: False, hidden: Sequence[str] = ()
                  ) -> Generator[Request, Any, Probe]:
    """The first ``n_tokens`` greedy answer tokens and their uncertainty; the KV cache is rolled back to hold
    exactly ``prompt`` afterwards, and the prompt's next-token logits are put back, so if the small model keeps
    the query its answer starts from the glimpse's prefill without evaluating anything.

    The first position's logits come with the prefill, so the glimpse costs ``n_tokens - 1`` decode steps (with
    ``"prompt"`` in ``hidden``, the prompt's last token is evaluated on its own as well)."""
    return (yield from probe_steps(model, prompt, GREEDY, max_tokens=n_tokens, should_stop=should_stop,
                                   rollback=True, hidden=hidden))


def probe(model: LlamaModel, prompt: Sequence[int], options: SamplingOptions, *, max_tokens: int,
          **kwargs: Any) -> Probe:
    """:func:`probe_steps` run alone on ``model``'s selected sequence (tests, tools)."""
    return drive(model, probe_steps(model, prompt, options, max_tokens=max_tokens, **kwargs))


def glimpse(model: LlamaModel, prompt: Sequence[int], **kwargs: Any) -> Probe:
    """:func:`glimpse_steps` run alone on ``model``'s selected sequence (tests, tools)."""
    return drive(model, glimpse_steps(model, prompt, **kwargs))


# Products of a glimpse statistic and a prompt-type flag. The same first-token confidence means different things for
# a question the small model answers by echoing it ("The capital of ...") and for a sum whose first tokens are
# digits; these let the logistic score weigh the glimpse per kind of question (better in cross-validation on the
# training split: see app/bench/fit_routing.py).
INTERACTIONS: tuple[tuple[str, str], ...] = tuple(
    (g, kind) for g in ("glimpse_prob_first", "glimpse_entropy_mean")
    for kind in ("math", "wordplay", "fact", "units", "multi_step", "how_many"))
INTERACTION_FEATURES: list[str] = [f"{g}*{kind}" for g, kind in INTERACTIONS]


_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset("a an the is are was were of in on at to for and or it its this that be by as with".split())


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def agreement_features(opening: str, samples: Sequence[str]) -> Features:
    """How far short sampled continuations agree with the greedy answer's ``opening`` (the same number of
    tokens): ``agreement_words``, the mean Jaccard overlap of their content words, and ``agreement_exact``, the
    share that are the very same text. A model that is sure of its answer says the same thing when sampled."""
    if not samples:
        return {}
    ref = _content_words(opening)
    overlaps = []
    for s in samples:
        words = _content_words(s)
        union = ref | words
        overlaps.append(len(ref & words) / len(union) if union else 1.0)
    return {"agreement_words": float(np.mean(overlaps)),
            "agreement_exact": float(np.mean([s.strip() == opening.strip() for s in samples]))}


def route_signals(prompt: str, glimpse_steps: Sequence[TokenUncertainty] | None,
                  answer_steps: Sequence[TokenUncertainty] | None = None, *, hidden_probe: float | None = None,
                  agreement: Features | None = None) -> Features:
    """Every signal the router scores for the user's ``prompt``: its prompt features; with ``glimpse_steps``
    the glimpse statistics and their :data:`INTERACTIONS` with the prompt features (left out when there was no
    glimpse, so they count as "no evidence"); with ``answer_steps`` (``cascade``) the whole answer's; with
    ``hidden_probe`` the hidden-state probe's logit (:mod:`inference.hidden_probe`); with ``agreement`` the
    sampled continuations' :func:`agreement_features` (``cascade``)."""
    out = prompt_features(prompt)
    if glimpse_steps is not None:
        out.update(uncertainty_features(glimpse_steps, "glimpse"))
        for g, kind in INTERACTIONS:
            out[f"{g}*{kind}"] = out[g] * out[kind]
    if answer_steps is not None:
        out.update(uncertainty_features(answer_steps, "answer"))
    if hidden_probe is not None:
        out["hidden_probe"] = float(hidden_probe)
    if agreement:
        out.update(agreement)
    return out
