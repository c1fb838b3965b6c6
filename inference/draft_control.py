"""How many tokens to draft next: chosen from recent acceptance and measured draft and verify costs.

Model: each drafted token is accepted with probability ``a`` given the ones before it were, so drafting K tokens
yields ``E(K) = (1 - a^(K+1)) / (1 - a)`` tokens per round (accepted drafts plus the target's own token) at a cost of
``draft(K) + verify(K + 1)``. Plain decoding yields one token per ``verify(1)``. The controller picks the K with the
best expected rate and drafts nothing (a plain step) when no K beats plain decoding; while paused it probes now and
then so a change in acceptance is noticed.

Acceptance is also kept per *kind of proposal*, a key the drafter gives (for prompt lookup: how long its match
in the conversation is). A 20-token stretch found again is text being copied, and its continuation is accepted
almost always, while a 2-gram match is as often a common phrase in new prose. So lookup verifies long proposals
where copying goes on and none where it does not, instead of one average that drafts a little everywhere. Each
key's estimate starts from a prior (``key_priors``, else the pooled estimate) worth :data:`KEY_PRIOR` observations
and follows its own observations from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


KEY_PRIOR = 2.0  # observations' worth of the prior in each key's estimate
MAX_PROBE_BACKOFF = 16  # a paused key is probed at least every probe_every * this plain steps


@dataclass
class ControlStats:
    """What the controller has measured (for reports and tests)."""

    acceptance: float
    draft_s_per_token: float
    verify_s: dict[int, float]
    paused_rounds: int
    acceptance_by_key: dict[str, float]


class DraftController:
    """Adaptive draft length.

    Args:
        max_draft: the longest draft.
        adaptive: False drafts ``max_draft`` tokens every round (for measurements).
        prior_acceptance: acceptance assumed before anything is measured.
        prior_verify_slope: assumed extra verify cost per extra batch token, as a fraction of one token's cost
            (about 0.35 on 2 CPU cores, near 0 on a GPU); replaced by measurements as they come.
        decay: weight kept by old observations each round (smaller adapts faster).
        probe_every: while paused, draft a short probe after this many plain steps (twice as many after each
            probe that failed, up to :data:`MAX_PROBE_BACKOFF` times).
        min_gain: a K must promise at least this speed ratio over plain decoding to be used.
        prior_draft_ratio: assumed cost of one drafted token as a fraction of one target token, until measured
            (0 for prompt lookup; for a draft model, about its size relative to the target's). Without it the
            first rounds would treat drafting as free.
        key_priors: acceptance assumed for each kind of proposal before it is measured (see the module
            docstring; e.g. :data:`inference.drafters.LOOKUP_PRIORS`).
    """

    def __init__(self, *, max_draft: int = 8, adaptive: bool = True, prior_acceptance: float = 0.7,
                 prior_verify_slope: float = 0.35, decay: float = 0.9, probe_every: int = 24,
                 min_gain: float = 1.03, prior_draft_ratio: float = 0.0,
                 key_priors: Mapping[tuple, float] | None = None) -> None:
        self.prior_draft_ratio = prior_draft_ratio
        self.key_priors = dict(key_priors or {})
        self.max_draft = max(1, max_draft)
        self.adaptive = adaptive
        self.prior_verify_slope = prior_verify_slope
        self.decay = decay
        self.probe_every = probe_every
        self.min_gain = min_gain
        self._acc = prior_acceptance * 4.0  # decayed counts, starting from a weak prior worth 4 tokens
        self._rej = (1.0 - prior_acceptance) * 4.0
        self._keyed: dict[tuple, list[float]] = {}  # key -> decayed [accepted, rejected] of its proposals
        self._since_probe_of: dict[tuple | None, int] = {}
        self._probe_gap: dict[tuple | None, int] = {}  # plain steps between probes, per key (backs off)
        self._probing: set[tuple | None] = set()
        self._draft_s = 0.0  # decayed draft seconds and drafted tokens
        self._draft_n = 0.0
        self._verify: dict[int, float] = {}  # batch size -> EMA of seconds
        self.paused_rounds = 0

    # -- estimates -----------------------------------------------------------------------------------------------

    @property
    def acceptance(self) -> float:
        """Estimated probability that a drafted token is accepted (all proposals)."""
        return self._acc / max(self._acc + self._rej, 1e-9)

    def acceptance_of(self, key: tuple | None) -> float:
        """Estimated acceptance of proposals of kind ``key`` (None: all): the key's own counts, pulled towards its
        prior (``key_priors``, else the estimate of the key without its last part, and for a key of one part the
        pooled estimate) by :data:`KEY_PRIOR` observations' worth."""
        if not key:
            return self.acceptance
        parent = self.key_priors[key] if key in self.key_priors else self.acceptance_of(key[:-1])
        counts = self._keyed.get(key)
        if counts is None:
            return parent
        acc, rej = counts
        return (acc + KEY_PRIOR * parent) / max(acc + rej + KEY_PRIOR, 1e-9)

    def draft_cost(self) -> float:
        """Seconds per drafted token (before any measurement: the prior ratio times a target token's cost)."""
        if self._draft_n > 0:
            return self._draft_s / self._draft_n
        return self.prior_draft_ratio * (self.verify_cost(1) or 0.0)

    def could_pay(self) -> bool:
        """Whether drafting could beat plain decoding even if every drafted token were accepted."""
        t1 = self.verify_cost(1)
        if t1 is None:
            return True
        best = max((k + 1) / (k * self.draft_cost() + (self.verify_cost(k + 1) or t1))
                   for k in range(1, self.max_draft + 1))
        return best > self.min_gain / t1

    def verify_cost(self, n: int) -> float | None:
        """Estimated seconds to verify a batch of ``n`` tokens (None before any verify is measured)."""
        if not self._verify:
            return None
        if n in self._verify:
            return self._verify[n]
        sizes = sorted(self._verify)
        below = [s for s in sizes if s < n]
        above = [s for s in sizes if s > n]
        if below and above:  # interpolate
            lo, hi = below[-1], above[0]
            w = (n - lo) / (hi - lo)
            return self._verify[lo] * (1 - w) + self._verify[hi] * w
        base = self._verify.get(1) or self._verify[sizes[0]] / (1 + self.prior_verify_slope * (sizes[0] - 1))
        if below and below[-1] > 1:  # extrapolate along the measured slope, never below the prior's shape
            slope = (self._verify[below[-1]] - base) / (below[-1] - 1)
            return self._verify[below[-1]] + max(slope, 0.0) * (n - below[-1])
        return base * (1 + self.prior_verify_slope * (n - 1))

    def expected_rate(self, k: int, key: tuple | None = None) -> float:
        """Expected tokens per second when drafting ``k`` tokens (``k = 0``: plain decoding) of kind ``key``."""
        t1 = self.verify_cost(1)
        if t1 is None:
            return 0.0
        if k == 0:
            return 1.0 / t1
        a = min(self.acceptance_of(key), 0.999)
        tokens = (1 - a ** (k + 1)) / (1 - a)
        cost = k * self.draft_cost() + (self.verify_cost(k + 1) or t1)
        return tokens / cost

    # -- decisions -----------------------------------------------------------------------------------------------

    def next_k(self, key: tuple | None = None) -> int:
        """How many tokens to draft this round (0: a plain step), for a proposal of kind ``key`` (None: the
        drafter drafts before it knows, as a draft model does)."""
        if not self.adaptive:
            return self.max_draft
        if self.verify_cost(1) is None:
            return 0  # measure one plain step first
        plain = self.expected_rate(0)
        best_k, best = 0, plain * self.min_gain
        for k in range(1, self.max_draft + 1):
            r = self.expected_rate(k, key)
            if r > best:
                best_k, best = k, r
        if best_k == 0:
            since = self._since_probe_of.get(key, 0) + 1
            self._since_probe_of[key] = since
            if since >= self._probe_gap.get(key, self.probe_every) and self.could_pay():
                self._since_probe_of[key] = 0
                self._probing.add(key)
                return 2  # probe: keeps the acceptance estimate from going stale
            self.paused_rounds += 1
        else:
            self._since_probe_of[key] = 0
        return best_k

    def record(self, *, drafted: int, accepted: int, draft_s: float, verify_s: float, batch: int,
               key: tuple | None = None) -> None:
        """Account one round: ``drafted`` proposed (of kind ``key``), ``accepted`` of them accepted, the costs, and
        the verify batch size (``drafted + 1``)."""
        d = self.decay
        if key in self._probing and drafted > 0:  # a failed probe waits twice as long for the next one
            self._probing.discard(key)
            gap = self._probe_gap.get(key, self.probe_every)
            self._probe_gap[key] = (min(gap * 2, self.probe_every * MAX_PROBE_BACKOFF) if accepted < drafted
                                    else self.probe_every)
        if drafted > 0:
            self._acc = self._acc * d + accepted
            self._rej = self._rej * d + (1 if accepted < drafted else 0)
            for n in range(1, len(key or ()) + 1):  # the key and each of its parents
                counts = self._keyed.setdefault(key[:n], [0.0, 0.0])
                counts[0] = counts[0] * d + accepted
                counts[1] = counts[1] * d + (1 if accepted < drafted else 0)
            self._draft_s = self._draft_s * d + draft_s
            self._draft_n = self._draft_n * d + drafted
        old = self._verify.get(batch)
        if old is not None:
            verify_s = min(verify_s, old * 3.0)  # one stall (another process took the core) must not dominate
        self._verify[batch] = verify_s if old is None else old * 0.8 + verify_s * 0.2

    def stats(self) -> ControlStats:
        """A snapshot of the estimates."""
        return ControlStats(round(self.acceptance, 4), round(self.draft_cost(), 6),
                            {k: round(v, 6) for k, v in sorted(self._verify.items())}, self.paused_rounds,
                            {"/".join(map(str, k)): round(self.acceptance_of(k), 4) for k in sorted(self._keyed, key=str)})
