"""The escalation score and the threshold that keeps a target escalation rate.

The score is a logistic model over the signals of :mod:`inference.route_signals`: each feature is standardised
with the centre and scale it had on the fitting data, weighted and summed, and squashed into [0, 1]. Two fitted
models ship with Ember: one for ``auto`` (prompt features and the glimpse) and one for ``cascade`` (those plus
the confidence over the whole small answer). ``ember bench routing --fit`` refits them on the training split of a
dataset and prints the numbers below.

The threshold is not hand-tuned: for a target escalation rate ``b`` it is the ``1 - b`` quantile of the scores
Ember has recorded for that policy (:func:`calibrate_threshold`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence, get_args

import numpy as np

# The router's policies and tiers, declared once: settings, CLI flags, API schemas and the desktop read these.
Policy = Literal["off", "auto", "cascade"]
Tier = Literal["small", "large"]
POLICIES: tuple[str, ...] = get_args(Policy)
TIERS: tuple[str, ...] = get_args(Tier)


@dataclass(frozen=True)
class ScoreModel:
    """A logistic escalation score: ``sigmoid(bias + sum(w * (x - centre) / scale))``; missing features count
    as their centre (no evidence either way)."""

    bias: float
    weights: Mapping[str, float]
    centre: Mapping[str, float] = field(default_factory=dict)
    scale: Mapping[str, float] = field(default_factory=dict)

    def score(self, features: Mapping[str, float]) -> float:
        """The escalation score of ``features``, in [0, 1] (higher: more likely the small model is wrong)."""
        z = self.bias
        for name, w in self.weights.items():
            c = self.centre.get(name, 0.0)
            x = features.get(name, c)
            if x is None or not math.isfinite(x):
                x = c
            z += w * (x - c) / (self.scale.get(name, 1.0) or 1.0)
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))

    def contributions(self, features: Mapping[str, float]) -> list[tuple[str, float]]:
        """Each feature's term ``w * (x - centre) / scale`` of the score's logit, largest push towards escalating
        first (what "the router says why" shows: the top two)."""
        out = []
        for name, w in self.weights.items():
            c = self.centre.get(name, 0.0)
            x = features.get(name, c)
            if x is None or not math.isfinite(x):
                x = c
            out.append((name, w * (x - c) / (self.scale.get(name, 1.0) or 1.0)))
        return sorted(out, key=lambda kv: -kv[1])

    def as_dict(self) -> dict:
        """A JSON-ready form (what ``--fit`` prints)."""
        return {"bias": round(self.bias, 4), "weights": {k: round(v, 4) for k, v in self.weights.items()},
                "centre": {k: round(v, 4) for k, v in self.centre.items()},
                "scale": {k: round(v, 4) for k, v in self.scale.items()}}


def score_model_from_dict(d: Mapping[str, object]) -> ScoreModel:
    """The inverse of :meth:`ScoreModel.as_dict` (learned weights read back from storage)."""
    return ScoreModel(bias=float(d["bias"]), weights=dict(d["weights"]), centre=dict(d.get("centre") or {}),
                      scale=dict(d.get("scale") or {}))


def fit_score_model(rows: Sequence[Mapping[str, float]], wrong: Sequence[bool], *, names: Sequence[str],
                    l2: float = 1.0, steps: int = 3000, lr: float = 0.1) -> ScoreModel:
    """Fit a :class:`ScoreModel` (L2-regularised logistic regression, full-batch gradient descent).

    Args:
        rows: one feature dict per example.
        wrong: True where the small model's answer was wrong (the label to predict).
        names: the features to use.
        l2: regularisation strength (on standardised weights).
    """
    if len(rows) != len(wrong) or not rows:
        raise ValueError("rows and labels must be non-empty and of the same length")
    x = np.array([[float(r.get(n, 0.0)) for n in names] for r in rows], dtype=np.float64)
    y = np.array(wrong, dtype=np.float64)
    centre = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    xs = (x - centre) / scale
    w = np.zeros(len(names))
    b = 0.0
    n = len(y)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xs @ w + b)))
        g = p - y
        w -= lr * (xs.T @ g / n + l2 * w / n)
        b -= lr * g.mean()
    return ScoreModel(bias=float(b), weights={k: float(v) for k, v in zip(names, w)},
                      centre={k: float(v) for k, v in zip(names, centre)},
                      scale={k: float(v) for k, v in zip(names, scale)})


def calibrate_threshold(scores: Sequence[float], rate: float, *, default: float = 0.5,
                        min_samples: int = 20) -> float:
    """The score threshold that escalates a fraction ``rate`` of queries like the ``scores`` seen so far.

    Escalate when ``score >= threshold``. With fewer than ``min_samples`` scores there is nothing to calibrate
    on and ``default`` is returned. ``rate`` 0 never escalates (threshold above 1), 1 always does (0).
    """
    if rate <= 0.0:
        return 1.0 + 1e-9
    if rate >= 1.0:
        return 0.0
    if len(scores) < min_samples:
        return default
    return float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - rate, method="higher"))


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve: the chance a random positive (wrong answer) scores above a random negative,
    ties counting half. None when either class is empty."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def auroc_interval(scores: Sequence[float], positive: Sequence[bool], *, level: float = 0.95,
                   resamples: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """A percentile-bootstrap confidence interval for :func:`auroc` (items resampled with replacement, fixed seed
    so a report reproduces). None when either class is empty."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    if y.all() or not y.any():
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, len(s), len(s))
        a = auroc(s[idx], y[idx])
        if a is not None:
            values.append(a)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def caught_at_rate(scores: Sequence[float], wrong: Sequence[bool], rate: float) -> float | None:
    """The fraction of wrong answers among the top ``rate`` share of scores (what escalating that many would
    catch). None when nothing is wrong."""
    n_wrong = int(sum(bool(w) for w in wrong))
    if n_wrong == 0:
        return None
    k = int(round(rate * len(scores)))
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]
    return float(sum(bool(wrong[i]) for i in order) / n_wrong)


@dataclass
class RouteDecision:
    """What the router decided for one request, and why."""

    policy: str  # "auto" | "cascade" | "forced"
    tier: Tier
    score: float | None  # None when the tier was forced
    threshold: float | None
    signals: dict[str, float]
    decision_ms: float
    forced: bool = False
    escalated: bool = False
    error: str | None = None  # the large tier failed; the small model's answer was kept
    # The signals that pushed the score most (``ScoreModel.contributions`` of the model that scored it, top two):
    # ``(name, logit term)``, largest push towards escalating first.
    why: list[tuple[str, float]] = field(default_factory=list)
    learned: bool = False  # scored with the weights learned from this user's labels (not the shipped ones)

    def stats(self, *, model: str) -> dict:
        """The ``router`` entry of a reply's stats (read by the GUI badge, the CLI and the API)."""
        out = {"tier": self.tier, "policy": self.policy, "escalated": self.escalated, "model": model,
               "decision_ms": round(self.decision_ms, 2)}
        if self.score is not None:
            out["score"] = round(self.score, 4)
            out["learned"] = self.learned
        if self.threshold is not None:
            out["threshold"] = round(self.threshold, 4)
        if self.why:
            out["why"] = [{"signal": name, "push": round(push, 4)} for name, push in self.why]
        if self.error:
            out["error"] = self.error
        return out
