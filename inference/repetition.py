"""Noticing a reply that has turned into a verbatim loop, token by token.

Small models (the starter above all) often fall into a loop at temperature 0 and at low temperatures: the same
clause again and again ("... le Grand Croix de la femme de France, le Grand Croix, ...") until ``max_tokens``. The
decode loops feed every generated token to a :class:`LoopDetector`; when it fires the reply ends with the finish
reason ``repetition``. The text streamed up to then is kept as it is (it has already been shown), so the reply ends
with the few copies of the loop that proved it was one.

The rule: the reply's tail is ``c`` back-to-back copies of a span of ``p`` tokens (``1 <= p <= max_period``), and
that repeated tail covers at least ``max(min_repeats * p, min_tokens)`` tokens. The first copy counts, so with the
defaults a clause of 30 tokens is cut at the end of its third copy, and a single token or a two-token pair has to
repeat for 64 tokens.

Why these thresholds (the defaults):

- ``min_repeats = 3``: one repeat ("very very", "Hip hip hooray! Hip hip hooray!") is ordinary language; three
  verbatim copies of a long span back to back almost never are, so long periods are cut at their third copy.
- ``min_tokens = 64``: short spans repeat legitimately a handful of times: "ha ha ha", rows of a small zero matrix
  (``[0, 0, 0],`` a few times), a refrain, "Row, row, row your boat", a separator line. Counting only a tail of at
  least 64 tokens lets those through while a degenerate loop of a word or a short phrase is still cut within 64
  tokens. Lists and code with *similar* lines ("1, 2, 3", ``print(a)`` / ``print(b)``) are never verbatim copies of
  each other, so they never count at all, however long.
- ``max_period = 64``: loops the starter falls into are clauses and sentences (10-40 tokens); 64 covers a long
  sentence. A longer period (a whole paragraph repeated) is not caught; DRY (``dry_multiplier``) penalises those.

A user who asks for deliberate verbatim repetition ("write this line 20 times") turns the check off with the
``stop_loops`` sampling setting.

Cost: each token updates one counter per period, ``O(max_period)`` integer comparisons, and the detector keeps only
the last ``max_period`` tokens, whatever the reply's length.
"""

from __future__ import annotations

from typing import Iterable

MAX_PERIOD = 64
MIN_REPEATS = 3
MIN_TOKENS = 64


class LoopDetector:
    """Fed the reply's token ids one at a time; :meth:`push` returns True at the token where the reply has become a
    loop (see the module docstring for the rule). After it has fired it stays fired.

    Args:
        max_period: the longest repeated span looked for, in tokens.
        min_repeats: copies of the span (the first included) the repeated tail must hold.
        min_tokens: tokens the repeated tail must cover, whatever the span's length.
    """

    def __init__(self, *, max_period: int = MAX_PERIOD, min_repeats: int = MIN_REPEATS,
                 min_tokens: int = MIN_TOKENS) -> None:
        if max_period < 1 or min_repeats < 2 or min_tokens < 2:
            raise ValueError("max_period >= 1, min_repeats >= 2 and min_tokens >= 2 are required")
        self.max_period = max_period
        # run[p]: how many of the latest tokens each equal the token p places before them (0 at index 0 unused).
        self._run = [0] * (max_period + 1)
        # need[p]: the run length at which a period-p tail covers max(min_repeats * p, min_tokens) tokens.
        self._need = [0] + [max(min_repeats * p, min_tokens) - p for p in range(1, max_period + 1)]
        self._recent: list[int] = []  # the last tokens, at most 2 * max_period of them
        self.count = 0  # tokens pushed
        self.fired_at: int | None = None  # index (0-based) of the token at which the loop was noticed
        self.period: int | None = None  # the span's length, once fired
        self.span: int | None = None  # tokens the repeated tail covered when it fired

    @property
    def looping(self) -> bool:
        """True once the reply has been found to loop."""
        return self.fired_at is not None

    def push(self, token: int) -> bool:
        """Record the next reply token; True when the reply is (now or already) a loop."""
        recent, run, need = self._recent, self._run, self._need
        n = len(recent)
        hit = 0
        for p in range(1, min(self.max_period, n) + 1):
            if recent[n - p] == token:
                r = run[p] + 1
                run[p] = r
                if not hit and r >= need[p]:
                    hit = p
            else:
                run[p] = 0
        recent.append(token)
        if n + 1 >= 2 * self.max_period:
            del recent[:n + 1 - self.max_period]
        self.count += 1
        if hit and self.fired_at is None:
            self.fired_at, self.period, self.span = self.count - 1, hit, run[hit] + hit
        return self.looping

    def feed(self, tokens: Iterable[int]) -> int | None:
        """Push every token of ``tokens`` (observe-only use, e.g. on a finished reply); returns :attr:`fired_at`."""
        for tok in tokens:
            self.push(tok)
        return self.fired_at


def first_loop(tokens: Iterable[int], **thresholds: int) -> int | None:
    """The index of the token at which a reply made of ``tokens`` would be cut as a loop, or None."""
    return LoopDetector(**thresholds).feed(tokens)
