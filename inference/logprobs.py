"""Log-probabilities of generated tokens (OpenAI's ``logprobs`` / ``top_logprobs``).

The distribution is the model's own (log-softmax of the raw logits row, before penalties, temperature or a
grammar), read on the engine's worker right after each token is sampled, while llama.cpp still holds the row.
"""

from __future__ import annotations

from dataclasses import dataclass

import llama_cpp
import numpy as np

from inference.llama_model import LlamaModel

MAX_TOP = 20  # OpenAI's limit for top_logprobs


@dataclass(frozen=True)
class TokenAlternative:
    """One token and its log-probability."""

    token: str
    bytes: tuple[int, ...]
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """Engine event: the log-probability of a generated token and of the ``top`` likeliest tokens at that step
    (most likely first). Sent before the token's text."""

    token: str
    bytes: tuple[int, ...]
    logprob: float
    top: tuple[TokenAlternative, ...] = ()


def _alternative(model: LlamaModel, token: int, logprob: float) -> TokenAlternative:
    raw = model.piece(token)
    return TokenAlternative(raw.decode("utf-8", errors="replace"), tuple(raw), logprob)


def token_logprob(model: LlamaModel, token: int, top: int, index: int = -1) -> TokenLogprob:
    """The log-probability of ``token`` at the logits row of batch ``index`` (-1: the last evaluated position) and
    the ``top`` (0..20) likeliest tokens.

    Must run on the worker thread, before the next decode replaces the logits.
    """
    ptr = llama_cpp.llama_get_logits_ith(model.ctx, index)
    row = np.ctypeslib.as_array(ptr, shape=(model.n_vocab,)).astype(np.float64)
    peak = row.max()
    log_z = peak + np.log(np.exp(row - peak).sum())
    alts: tuple[TokenAlternative, ...] = ()
    n = max(0, min(top, MAX_TOP, model.n_vocab))
    if n:
        ids = np.argpartition(row, -n)[-n:]
        ids = ids[np.argsort(-row[ids], kind="stable")]
        alts = tuple(_alternative(model, int(i), float(row[i] - log_z)) for i in ids)
    chosen = _alternative(model, token, float(row[token] - log_z))
    return TokenLogprob(chosen.token, chosen.bytes, chosen.logprob, alts)
