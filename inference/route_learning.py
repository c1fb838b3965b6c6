"""Learning from the user: the router's escalation score, updated from this person's own labelled turns.

Every escalation the user asks for (``/large`` after a small answer, "Ask the large model" on a reply, regenerating
with the large tier) says the small model was wrong on that query; every small answer they go on from says it was
right. :class:`OnlineRouter` keeps these labels and, after each one, refits the logistic score on all of them with
the shipped :class:`~inference.router.ScoreModel` as its prior: the weights minimise the labels' log-loss plus
``prior / 2 * |w - w_shipped|^2`` (on standardised signals). So one label moves the score a little, a hundred
move it more, and with no labels it is the shipped model exactly. (A stochastic-gradient step per label was tried
first: on 237 held-out questions it lowered the AUROC by 0.03-0.05, learning each label's noise.)

One guard keeps it from learning itself into a worse router: the learned model is scored on the shipped model's
own validation split (items of the training data the shipped weights were not fitted on, stored beside them).
When its AUROC there falls below the shipped model's, the update is shrunk towards the shipped weights until it
no longer does; failing that, only the bias (the user's own error rate, which moves every score alike) is learned. Resetting returns to the shipped weights exactly.

Pure numpy over signal dicts; no llama.cpp, no storage (:mod:`storage.routing` keeps the state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from inference.router import ScoreModel, auroc

Signals = Mapping[str, float]


@dataclass
class LearningConfig:
    """How strongly the shipped weights hold against the user's labels."""

    prior: float = 30.0  # strength of the pull towards the shipped weights (in labels' worth, per weight)
    bias_prior: float = 3.0  # the same for the bias (the user's own error rate is learned sooner)
    max_labels: int = 500  # the most recent labels kept and refitted on
    tolerance: float = 0.0  # how far below the shipped model's validation AUROC a learned model may go


@dataclass
class OnlineRouter:
    """The shipped score model plus what this user's labels taught it.

    Args:
        shipped: the score model Ember ships for this policy.
        validation: the shipped model's validation split, ``(signals, wrong)`` pairs (none: no guard).
        config: how strongly the shipped weights hold.
    """

    shipped: ScoreModel
    validation: Sequence[tuple[Signals, bool]] = ()
    config: LearningConfig = field(default_factory=LearningConfig)
    updates: int = 0
    rejected: int = 0  # updates the validation guard refused

    def __post_init__(self) -> None:
        self.names = list(self.shipped.weights)
        self._w0 = np.array([self.shipped.weights[n] for n in self.names], dtype=np.float64)
        self._b0 = float(self.shipped.bias)
        self._w = self._w0.copy()
        self._b = self._b0
        self._x: list[np.ndarray] = []  # the kept labels, standardised
        self._y: list[float] = []
        self._centre = np.array([self.shipped.centre.get(n, 0.0) for n in self.names], dtype=np.float64)
        self._scale = np.array([self.shipped.scale.get(n, 1.0) or 1.0 for n in self.names], dtype=np.float64)
        if self.validation:
            self._vx = np.stack([self._standardise(s) for s, _ in self.validation])
            self._vy = [bool(w) for _, w in self.validation]
            self._floor = self._val_auroc(self._w0, self._b0) - self.config.tolerance
        else:
            self._vx, self._vy, self._floor = None, [], -math.inf

    # -- the model -----------------------------------------------------------------------------------------------

    @property
    def model(self) -> ScoreModel:
        """The score model as learned so far (the shipped one before any label)."""
        return ScoreModel(bias=self._b, weights=dict(zip(self.names, map(float, self._w))),
                          centre=self.shipped.centre, scale=self.shipped.scale)

    def score(self, signals: Signals) -> float:
        """The learned escalation score of ``signals``."""
        return _sigmoid(float(self._standardise(signals) @ self._w + self._b))

    def validation_auroc(self) -> float | None:
        """The learned model's AUROC on the validation split (None without one)."""
        return None if self._vx is None else self._val_auroc(self._w, self._b)

    # -- learning ------------------------------------------------------------------------------------------------

    def update(self, signals: Signals, wrong: bool) -> bool:
        """Learn from one labelled turn: ``wrong`` when the user escalated the small answer, False when they kept
        it. Returns False when the validation guard refused the weights' update (the bias is learned, the label kept)."""
        self._x.append(self._standardise(signals))
        self._y.append(1.0 if wrong else 0.0)
        del self._x[:-self.config.max_labels], self._y[:-self.config.max_labels]
        self.updates += 1
        w, b = self._refit()
        for alpha in (1.0, 0.5, 0.25, 0.125):  # the guard shrinks the update until it holds
            wa, ba = self._w0 + alpha * (w - self._w0), self._b0 + alpha * (b - self._b0)
            if self._vx is None or self._val_auroc(wa, ba) >= self._floor:
                self._w, self._b = wa, ba
                return True
        # refused: the shipped weights stay, only the bias (this user's own error rate) is learned; a bias moves
        # every score alike, so the validation AUROC is the shipped one
        self._w, self._b = self._w0.copy(), self._refit_bias()
        self.rejected += 1
        return False

    def _refit_bias(self, iters: int = 25) -> float:
        """The bias that best explains the kept labels with the shipped weights, under the bias prior."""
        z0 = np.stack(self._x) @ self._w0
        y = np.array(self._y)
        b = self._b
        for _ in range(iters):
            p = 1.0 / (1.0 + np.exp(-np.clip(z0 + b, -30, 30)))
            step = (float(np.sum(p - y)) + self.config.bias_prior * (b - self._b0)) / (
                float(np.sum(p * (1 - p))) + self.config.bias_prior)
            b -= step
            if abs(step) < 1e-9:
                break
        return b

    def _refit(self, iters: int = 25) -> tuple[np.ndarray, float]:
        """The weights that best explain the kept labels under the shipped prior (Newton's method)."""
        x = np.stack(self._x)
        y = np.array(self._y)
        xa = np.hstack([x, np.ones((len(x), 1))])
        reg = np.full(xa.shape[1], self.config.prior)
        reg[-1] = self.config.bias_prior
        theta0 = np.append(self._w0, self._b0)
        theta = np.append(self._w, self._b)
        for _ in range(iters):
            p = 1.0 / (1.0 + np.exp(-np.clip(xa @ theta, -30, 30)))
            grad = xa.T @ (p - y) + reg * (theta - theta0)
            hess = (xa.T * (p * (1 - p))) @ xa + np.diag(reg)
            step = np.linalg.solve(hess, grad)
            theta = theta - step
            if float(np.abs(step).max()) < 1e-7:
                break
        return theta[:-1], float(theta[-1])

    def reset(self) -> None:
        """Forget every label: back to the shipped weights."""
        self._w, self._b = self._w0.copy(), self._b0
        self._x, self._y = [], []
        self.updates = self.rejected = 0

    # -- persistence ---------------------------------------------------------------------------------------------

    def state(self) -> dict:
        """A JSON-ready form of what was learned (:meth:`restore` reads it back)."""
        labels = [[dict(zip(self.names, (round(float(v), 4) for v in x * self._scale + self._centre))), y]
                  for x, y in zip(self._x, self._y)]
        return {"bias": self._b, "weights": dict(zip(self.names, map(float, self._w))), "updates": self.updates,
                "rejected": self.rejected, "labels": labels}

    def restore(self, state: Mapping[str, object]) -> None:
        """Take up learned weights saved by :meth:`state`; features the shipped model no longer has are dropped
        and new ones start from the shipped weight, so a state outlives a refit of the shipped model."""
        weights = state.get("weights") or {}
        assert isinstance(weights, Mapping)
        self._w = np.array([float(weights.get(n, w0)) for n, w0 in zip(self.names, self._w0)])
        self._b = float(state.get("bias", self._b0))  # type: ignore[arg-type]
        self.updates = int(state.get("updates", 0))  # type: ignore[call-overload]
        self.rejected = int(state.get("rejected", 0))  # type: ignore[call-overload]
        labels = state.get("labels") or []
        assert isinstance(labels, list)
        self._x = [self._standardise(sig) for sig, _ in labels][-self.config.max_labels:]
        self._y = [float(y) for _, y in labels][-self.config.max_labels:]

    # -- internals -----------------------------------------------------------------------------------------------

    def _standardise(self, signals: Signals) -> np.ndarray:
        x = np.array([_finite(signals.get(n), c) for n, c in zip(self.names, self._centre)], dtype=np.float64)
        return (x - self._centre) / self._scale

    def _val_auroc(self, w: np.ndarray, b: float) -> float:
        assert self._vx is not None
        return auroc(list(self._vx @ w + b), self._vy) or 0.5


def _finite(x: float | None, default: float) -> float:
    return default if x is None or not math.isfinite(x) else float(x)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))
