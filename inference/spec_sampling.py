"""Sampling maths for speculative decoding, in numpy: the sampler chain as probabilities, and the accept/resample step.

The plain path draws tokens with llama.cpp's sampler chain (:class:`inference.sampler.Sampler`). Speculative
sampling needs the probabilities themselves (p from the target, q from the draft), so this module reproduces that
chain on a logits row: repeat penalty over the recent tokens, top-k, top-p, min-p (all on temperature-1 logits, as
llama.cpp orders them), then temperature and softmax. ``tests/unit/inference/test_spec_sampling.py`` checks it
against llama.cpp's own samplers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from inference.sampling import SamplingOptions


@dataclass(frozen=True)
class Dist:
    """A sparse distribution: candidate token ids and their probabilities (summing to 1)."""

    tokens: np.ndarray  # int64 ids
    probs: np.ndarray  # float64, same length

    def prob(self, token: int) -> float:
        """The probability of ``token`` (0 when it is not a candidate)."""
        hit = np.nonzero(self.tokens == token)[0]
        return float(self.probs[hit[0]]) if hit.size else 0.0

    def sample(self, rng: np.random.Generator) -> int:
        """One draw."""
        return int(self.tokens[_draw(self.probs, rng)])

    def argmax(self) -> int:
        """The likeliest token (the first one on ties)."""
        return int(self.tokens[int(np.argmax(self.probs))])


def apply_penalties(logits: np.ndarray, history: Sequence[int], options: SamplingOptions) -> np.ndarray:
    """``logits`` with llama.cpp's repeat penalty for the last ``repeat_last_n`` tokens of ``history`` (a copy
    when anything changes): positive logits are divided by the penalty, negative ones multiplied."""
    if options.repeat_penalty == 1.0 or options.repeat_last_n <= 0 or not history:
        return logits
    recent = np.unique(np.asarray(history[-options.repeat_last_n:], dtype=np.int64))
    recent = recent[(recent >= 0) & (recent < logits.shape[0])]
    out = np.array(logits, dtype=np.float32, copy=True)
    vals = out[recent]
    out[recent] = np.where(vals <= 0, vals * options.repeat_penalty, vals / options.repeat_penalty)
    return out


def greedy_token(logits: np.ndarray, history: Sequence[int], options: SamplingOptions) -> int:
    """The token the plain path picks at temperature 0: the argmax after penalties."""
    return int(np.argmax(apply_penalties(logits, history, options)))


def target_dist(logits: np.ndarray, history: Sequence[int], options: SamplingOptions) -> Dist:
    """The distribution llama.cpp's chain (penalties, top-k, top-p, min-p, temperature) samples from.

    Args:
        logits: one row of ``n_vocab`` logits.
        history: tokens so far (prompt and reply), for the repeat penalty.
        options: the sampler settings; ``temperature`` must be > 0.
    """
    x = apply_penalties(logits, history, options)
    n = x.shape[0]
    # top-k: the k largest logits, sorted descending (llama.cpp sorts here too); only they are copied to float64
    if 0 < options.top_k < n:
        idx = np.argpartition(x, n - options.top_k)[n - options.top_k:]
    else:
        idx = np.arange(n)
    kept = x[idx].astype(np.float64)
    sort = np.argsort(-kept, kind="stable")
    order, vals = idx[sort], kept[sort]
    if options.top_p < 1.0:
        p = _softmax(vals)
        cum = np.cumsum(p)
        keep = int(np.searchsorted(cum, options.top_p, side="left")) + 1
        keep = min(max(keep, 1), len(vals))
        order, vals = order[:keep], vals[:keep]
    if options.min_p > 0.0 and len(vals) > 1:
        floor = vals[0] + np.log(options.min_p)
        keep = max(int(np.count_nonzero(vals >= floor)), 1)
        order, vals = order[:keep], vals[:keep]
    probs = _softmax(vals / options.temperature)
    return Dist(order.astype(np.int64), probs)


def accept_or_resample(p: Dist, q: Dist | None, token: int, rng: np.random.Generator) -> tuple[bool, int]:
    """One step of speculative sampling for a drafted ``token``.

    Accept it with probability ``min(1, p(token) / q(token))``; otherwise draw from the residual
    ``max(0, p - q)`` normalised. ``q=None`` means the draft was deterministic (prompt lookup): q is one-hot,
    so the token is accepted with probability ``p(token)`` and the residual is p without that token.

    Returns:
        ``(accepted, token)``: the drafted token when accepted, else the resampled one.
    """
    pt = p.prob(token)
    qt = 1.0 if q is None else q.prob(token)
    if qt <= 0.0:  # the draft could not have produced it; never happens with a consistent q
        return False, p.sample(rng)
    if pt >= qt or rng.random() < pt / qt:
        return True, token
    if q is None:
        residual = np.where(p.tokens == token, 0.0, p.probs)
    else:
        q_on_p = _lookup(q, p.tokens)
        residual = np.maximum(p.probs - q_on_p, 0.0)
    total = residual.sum()
    if total <= 0.0:  # p == q up to rounding: any draw from p is right
        return False, p.sample(rng)
    return False, int(p.tokens[_draw(residual / total, rng)])


def _lookup(d: Dist, tokens: np.ndarray) -> np.ndarray:
    """The probabilities ``d`` gives to ``tokens`` (0 for tokens outside its support)."""
    order = np.argsort(d.tokens)
    sorted_tokens = d.tokens[order]
    pos = np.searchsorted(sorted_tokens, tokens)
    pos = np.clip(pos, 0, len(sorted_tokens) - 1)
    hit = sorted_tokens[pos] == tokens
    return np.where(hit, d.probs[order][pos], 0.0)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    cum = np.cumsum(probs)
    i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return min(i, len(probs) - 1)
