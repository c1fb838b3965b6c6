"""How many threads each decode uses: fewer when other programs take the cores, more again when they free up.

llama.cpp's CPU threads wait for each other at every operation, so with as many threads as cores one thread that
the OS takes away stalls all the others: with one busy core a 2-core machine decoded the starter at 36.6 tok/s on 2
threads and 85.7 on 1 (``llama-bench``), and with another llama.cpp process decoding at 28.3 against 63.0. Which
count is best changes from minute to minute, so it is measured, not guessed: the controller times every decode,
keeps the recent step times of each thread count (per kind of step: single tokens, small batches, prompt chunks),
uses the count whose recent steps were fastest, and now and then tries a neighbouring count for a few steps to
see whether the machine changed (immediately when the current count slows down against its own quiet figure).
Changing the count costs nothing (``llama_set_n_threads`` between decodes) and does not change the logits.

Everything here is plain arithmetic on the step times it is given, so the decisions are tested without a model or
a clock.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

# Kinds of step: a decode of 1-4 tokens (replies, small verify batches), 5-64 (speculative verify, prompt tails),
# and larger prompt chunks. Their costs, and the best thread count, differ.
BUCKETS = (4, 64)


def bucket(n_tokens: int) -> int:
    """The kind of step a decode of ``n_tokens`` is (0: single tokens, 1: small batches, 2: prompt chunks)."""
    return next((i for i, top in enumerate(BUCKETS) if n_tokens <= top), len(BUCKETS))


@dataclass
class _Kind:
    """The state of one kind of step: the count in use, recent step times per count, and any probe under way."""

    current: int
    times: dict[int, deque[tuple[float, float]]] = field(default_factory=dict)  # count -> (when, seconds per token)
    best: dict[int, float] = field(default_factory=dict)  # count -> the fastest window median seen (its quiet figure)
    steps: int = 0  # steps since the last probe ended
    probe: int | None = None  # the count being tried
    probe_steps: int = 0
    direction: int = -1  # the next probe goes down (-1) or up (+1)
    backoff: int = 1  # probes that changed nothing in a row make the next one wait this many times longer


class ThreadController:
    """Chooses the thread count of each decode from the measured time of recent ones.

    Args:
        max_threads: the most threads (the physical cores, or the user's setting).
        window: steps whose median is a count's current figure.
        probe_steps: steps a probe of another count lasts.
        probe_every: steps between probes while the current count holds its pace.
        slower: the factor by which the current count's figure must exceed its quiet figure for a probe to start
            at once.
        margin: a probed count must be this much faster (per token) to replace the current one.
        stale_after: seconds after which a count's figures no longer count (the machine may have changed).
    """

    def __init__(self, max_threads: int, *, window: int = 8, probe_steps: int = 4, probe_every: int = 96,
                 slower: float = 1.3, margin: float = 0.92, stale_after: float = 10.0) -> None:
        self.max_threads = max(1, max_threads)
        self.window = window
        self.probe_steps = probe_steps
        self.probe_every = probe_every
        self.slower = slower
        self.margin = margin
        self.stale_after = stale_after
        self._kinds = [_Kind(self.max_threads) for _ in range(len(BUCKETS) + 1)]
        self.switches = 0  # times the count in use changed (for /health and the bench)

    def threads_for(self, n_tokens: int) -> int:
        """The thread count for the next decode of ``n_tokens`` tokens."""
        kind = self._kinds[bucket(n_tokens)]
        return kind.probe if kind.probe is not None else kind.current

    def plan(self) -> dict[str, int]:
        """The counts in use now, per kind of step (for ``/health`` and ``ember doctor``)."""
        names = ("tokens", "small_batches", "prompt_chunks")
        return {"max": self.max_threads, **{n: k.current for n, k in zip(names, self._kinds)}}

    def record(self, n_tokens: int, threads: int, seconds: float, now: float) -> None:
        """Report that a decode of ``n_tokens`` on ``threads`` threads took ``seconds`` (``now``: a monotonic time)."""
        if n_tokens <= 0 or seconds <= 0 or self.max_threads == 1:
            return
        kind = self._kinds[bucket(n_tokens)]
        times = kind.times.setdefault(threads, deque(maxlen=self.window))
        times.append((now, seconds / n_tokens))
        if kind.probe is not None:
            kind.probe_steps += 1
            if kind.probe_steps >= self.probe_steps:
                self._end_probe(kind, now)
            return
        kind.steps += 1
        figure = self._figure(kind, kind.current, now)
        if figure is None:
            return
        quiet = kind.best.get(kind.current)
        if quiet is None or figure < quiet:
            kind.best[kind.current] = figure
        slowed = quiet is not None and figure > quiet * self.slower
        if kind.steps >= self.probe_every * kind.backoff or (slowed and kind.steps >= self.window):
            self._start_probe(kind, toward_fewer=slowed)

    # -- decisions ------------------------------------------------------------------------------------------------

    def _figure(self, kind: _Kind, threads: int, now: float, *, at_least: int | None = None) -> float | None:
        """The median seconds per token of ``threads``' recent steps (None: too few fresh ones)."""
        fresh = [s for when, s in kind.times.get(threads, ()) if now - when <= self.stale_after]
        if len(fresh) < (at_least or self.window):
            return None
        return statistics.median(fresh)

    def _start_probe(self, kind: _Kind, *, toward_fewer: bool) -> None:
        down, up = kind.current - 1, kind.current + 1
        if toward_fewer:
            candidate = down if down >= 1 else None
        else:
            order = (down, up) if kind.direction < 0 else (up, down)
            candidate = next((c for c in order if 1 <= c <= self.max_threads), None)
            kind.direction = -kind.direction
        kind.steps = 0
        if candidate is None:
            return
        kind.probe, kind.probe_steps = candidate, 0
        kind.times[candidate] = deque(maxlen=self.window)  # its old figures may be from another machine state

    def _end_probe(self, kind: _Kind, now: float) -> None:
        probe = kind.probe
        assert probe is not None
        kind.probe = None
        kind.steps = 0
        tried = self._figure(kind, probe, now, at_least=self.probe_steps)
        current = self._figure(kind, kind.current, now, at_least=min(self.probe_steps, self.window))
        if tried is None:
            return
        best = kind.best.get(probe)
        if best is None or tried < best:
            kind.best[probe] = tried
        if current is None or tried < current * self.margin:
            kind.current = probe
            kind.backoff = 1
            self.switches += 1
        else:
            kind.backoff = min(kind.backoff * 2, 8)
