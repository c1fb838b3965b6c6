"""Drafters propose the next few tokens cheaply; the target model then verifies them in one batch.

Two kinds:
- :class:`ModelDrafter`: a second, small GGUF with the target's vocabulary, in its own context whose KV cache follows
  the accepted text (rolled back past a rejection, never re-evaluated from scratch);
- :class:`LookupDrafter`: prompt lookup: the continuation of the latest earlier occurrence of the last n tokens in
  the conversation (prompt, history and the reply so far); no second model, and its proposals are deterministic.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import llama_cpp
import numpy as np

from inference.llama_model import LlamaModel
from inference.sampling import SamplingOptions
from inference.spec_sampling import Dist, apply_penalties, target_dist

log = logging.getLogger(__name__)


@dataclass
class Draft:
    """Proposed tokens and, for a sampled draft, the distribution each was drawn from (None: deterministic)."""

    tokens: list[int] = field(default_factory=list)
    q: list[Dist] | None = None
    catchup_s: float = 0.0  # time the drafter spent catching up with the accepted text (not per drafted token)
    key: tuple | None = None  # the kind of proposal, for the controller's acceptance per kind (lookup: (n-gram length,))


class Drafter(Protocol):
    """What the speculative loop needs from a drafter."""

    kind: str  # "draft" | "lookup"
    free: bool  # proposing costs nothing: the loop asks for the longest draft, then verifies what pays

    def propose(self, context: Sequence[int], k: int, options: SamplingOptions,
                rng: np.random.Generator) -> Draft:
        """Up to ``k`` tokens that may follow ``context`` (every accepted token so far, prompt included)."""
        ...

    def select(self, seq: int) -> None:
        """Draft for the target's sequence ``seq`` from now on (each sequence has its own drafting state)."""
        ...

    def close(self) -> None:
        """Free what the drafter holds."""
        ...


def logits_row(model: LlamaModel, i: int) -> np.ndarray:
    """A numpy view of the logits of batch row ``i`` (valid until the next decode call)."""
    ptr = llama_cpp.llama_get_logits_ith(model.ctx, i)
    return np.ctypeslib.as_array(ptr, shape=(model.n_vocab,))


class ModelDrafter:
    """Drafts with a small model of the same vocabulary.

    Its cache always holds a prefix of the accepted text plus the tokens it drafted last; :meth:`propose` cuts it
    back to the longest prefix shared with the accepted text and evaluates only what is missing (usually one or two
    tokens), so rejected drafts are rolled back and nothing is re-evaluated from scratch.

    Args:
        model: the loaded draft model (the drafter owns and closes it).
        p_min: at temperature 0, stop drafting when the draft's own probability of its next token is below this.
    """

    kind = "draft"
    free = False

    def __init__(self, model: LlamaModel, *, p_min: float = 0.5) -> None:
        self.model = model
        self.p_min = p_min
        self._told_too_long = False  # the "conversation outgrew the draft context" note is logged once

    def propose(self, context: Sequence[int], k: int, options: SamplingOptions,
                rng: np.random.Generator) -> Draft:
        """Up to ``k`` tokens after ``context``; none once ``context`` plus ``k`` outgrows the draft's context
        (its length may be clamped to the draft model's training length), so decoding goes on without drafts."""
        draft = Draft(q=None if options.temperature <= 0 else [])
        if k <= 0:
            return draft
        m = self.model
        if len(context) + k > m.n_ctx:
            if not self._told_too_long:
                log.info("the conversation (%d tokens) outgrew the %d-token context of draft model %s: "
                         "decoding on without drafts", len(context), m.n_ctx, m.path.name)
                self._told_too_long = True
            return draft
        t0 = time.perf_counter()
        m.ingest_prompt(context)  # reuses the cached prefix, evaluates the rest, logits for the last token
        draft.catchup_s = time.perf_counter() - t0
        hist = list(context[-max(options.repeat_last_n, 1):]) if options.repeat_penalty != 1.0 else []
        for i in range(k):
            row = logits_row(m, -1)
            if draft.q is None:
                x = apply_penalties(row, hist, options)
                tok = int(np.argmax(x))
                top = float(x[tok])
                conf = 1.0 / float(np.exp(x - top).sum())
                if conf < self.p_min:
                    break
            else:
                q = target_dist(row, hist, options)
                tok = q.sample(rng)
                if q.probs.max() < self.p_min * 0.5:
                    break
                draft.q.append(q)
            draft.tokens.append(tok)
            if hist:
                hist.append(tok)
            if i + 1 < k:
                if len(m.tokens) + 1 >= m.n_ctx:
                    break
                m.decode([tok])
        return draft

    def select(self, seq: int) -> None:
        """Its model's sequence ``seq`` (the draft context has as many as the target's) holds that reply's text."""
        self.model.select(min(seq, self.model.n_seq - 1))

    def close(self) -> None:
        self.model.close()


class LookupDrafter:
    """Prompt lookup over the whole conversation, with an incremental n-gram index.

    For n from ``ngram_max`` down to ``ngram_min``, the last n accepted tokens are looked up; at the latest earlier
    place they occurred, the tokens that followed there are proposed. The proposal's key is the class of how long
    the match really is there (:func:`match_bucket`), for the controller's acceptance per class.
    """

    kind = "lookup"
    free = True

    def __init__(self, *, ngram_min: int = 2, ngram_max: int = 4) -> None:
        if not 1 <= ngram_min <= ngram_max:
            raise ValueError("need 1 <= ngram_min <= ngram_max")
        self.ngram_min = ngram_min
        self.ngram_max = ngram_max
        self._tokens: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}  # n-gram -> latest end (exclusive) with a token after it
        self._seq = 0
        self._others: dict[int, tuple[list[int], dict[tuple[int, ...], int]]] = {}  # other sequences' indexes

    def propose(self, context: Sequence[int], k: int, options: SamplingOptions | None = None,
                rng: np.random.Generator | None = None) -> Draft:
        if k <= 0:
            return Draft()
        self._sync(context)
        toks = self._tokens
        size = len(toks)
        for n in range(min(self.ngram_max, size - 1), self.ngram_min - 1, -1):
            end = self._index.get(tuple(toks[size - n:]))
            if end is not None:
                return Draft(tokens=toks[end:end + k], key=(match_bucket(_match_length(toks, end, size, n)),))
        return Draft()

    def _sync(self, context: Sequence[int]) -> None:
        """Index the tokens of ``context`` not seen yet (rebuild when it is not an extension of what was seen)."""
        old = len(self._tokens)
        if old > len(context) or (old and (context[old - 1] != self._tokens[-1]
                                           or list(context[:old]) != self._tokens)):
            self._tokens, self._index, old = [], {}, 0
        self._tokens.extend(context[old:])
        toks = self._tokens
        # an n-gram ending at e (exclusive) is indexed once the token at e exists, i.e. e <= len - 1
        for e in range(max(old - 1, 1), len(toks)):
            for n in range(self.ngram_min, self.ngram_max + 1):
                if e - n < 0:
                    break
                self._index[tuple(toks[e - n:e])] = e

    def select(self, seq: int) -> None:
        """Keep the index of the sequence drafted for so far and take up ``seq``'s."""
        if seq == self._seq:
            return
        self._others[self._seq] = (self._tokens, self._index)
        self._tokens, self._index = self._others.pop(seq, ([], {}))
        self._seq = seq

    def close(self) -> None:
        self._tokens, self._index, self._others = [], {}, {}


MATCH_BUCKETS = (3, 4, 6, 10, 16, 32)  # lower bounds of the match-length classes a lookup proposal is keyed by
# The acceptance of lookup proposals per match class before any is measured, rounded down from what a fixed 4-token
# lookup got on `ember bench speculative`'s own suites (copy-heavy and free-form, 7 prompts, the starter): 0.69,
# 0.77, 0.75, 0.83, 0.93, 0.98, 0.97 from the shortest class to the longest. Measured acceptance replaces them.
LOOKUP_PRIORS: dict[tuple, float] = {(2,): 0.6, (3,): 0.7, (4,): 0.7, (6,): 0.8, (10,): 0.9, (16,): 0.95,
                                     (32,): 0.95}


def match_bucket(length: int) -> int:
    """The class of a lookup match of ``length`` tokens: the largest of :data:`MATCH_BUCKETS` it reaches (2 below
    them). A long match means the reply is copying a stretch of the conversation, and then its proposals are
    usually right; a short one is as often a common phrase."""
    return max((b for b in MATCH_BUCKETS if length >= b), default=2)


def _match_length(toks: Sequence[int], end: int, size: int, n: int, limit: int = MATCH_BUCKETS[-1]) -> int:
    """How many tokens before ``end`` equal those before ``size`` (at least the ``n`` the index matched)."""
    length = n
    while length < limit and end - length - 1 >= 0 and toks[end - length - 1] == toks[size - length - 1]:
        length += 1
    return length
