"""Learning from the user: the router's escalation score, updated from this person's own labelled turns.

Every escalation the user asks for (``/large`` after a small answer, "Ask the large model" on a reply, regenerating
with the large tier) says the small model was wrong on that query; every small answer they go on from says it was
right. :class:`OnlineRouter` takes each such example as one bounded stochastic-gradient step of the logistic loss,
starting from the shipped :class:`~inference.router.ScoreModel` and pulled back towards it (an L2 anchor), so a
few labels move the score a little and many move it more.

One guard keeps it from learning itself into a worse router: after each step the learned model is scored on the
shipped model's own validation split (items of the training data the shipped weights were not fitted on, stored
beside them). When its AUROC there falls below the shipped model's, the step is shrunk until it no longer does (or
not taken). Resetting returns to the shipped weights exactly.

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
    """How far one label may move the score."""

    lr: float = 0.1  # step size on the standardised logit
    max_step: float = 0.25  # largest change of the weight vector (L2 norm) from one label
    anchor: float = 0.02  # pull back towards the shipped weights on every step
    tolerance: float = 0.0  # how far below the shipped model's validation AUROC a learned model may go


@dataclass
class OnlineRouter:
    """The shipped score model plus what this user's labels taught it.

    Args:
        shipped: the score model Ember ships for this policy.
        validation: the shipped model's validation split, ``(signals, wrong)`` pairs (none: no guard).
        config: step sizes.
    """

    shipped: ScoreModel
    validation: Sequence[tuple[Signals, bool]] = ()
    config: LearningConfig = field(default_factory=LearningConfig)
    updates: int = 0
    rejected: int = 0  # steps shrunk by the validation guard

    def __post_init__(self) -> None:
        self.names = list(self.shipped.weights)
        self._w0 = np.array([self.shipped.weights[n] for n in self.names], dtype=np.float64)
        self._b0 = float(self.shipped.bias)
        self._w = self._w0.copy()
        self._b = self._b0
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
        it. Returns False when the validation guard took the whole step back."""
        x = self._standardise(signals)
        y = 1.0 if wrong else 0.0
        p = _sigmoid(float(x @ self._w + self._b))
        c = self.config
        dw = -c.lr * ((p - y) * x + c.anchor * (self._w - self._w0))
        db = -c.lr * ((p - y) + c.anchor * (self._b - self._b0))
        norm = math.sqrt(float(dw @ dw) + db * db)
        if norm > c.max_step:
            dw, db = dw * (c.max_step / norm), db * (c.max_step / norm)
        self.updates += 1
        for alpha in (1.0, 0.5, 0.25, 0.125):  # the guard shrinks the step until it holds
            w, b = self._w + alpha * dw, self._b + alpha * db
            if self._vx is None or self._val_auroc(w, b) >= self._floor:
                self._w, self._b = w, b
                return True
        self.rejected += 1
        return False

    def reset(self) -> None:
        """Forget every label: back to the shipped weights."""
        self._w, self._b = self._w0.copy(), self._b0
        self.updates = self.rejected = 0

    # -- persistence ---------------------------------------------------------------------------------------------

    def state(self) -> dict:
        """A JSON-ready form of what was learned (:meth:`restore` reads it back)."""
        return {"bias": self._b, "weights": dict(zip(self.names, map(float, self._w))), "updates": self.updates,
                "rejected": self.rejected}

    def restore(self, state: Mapping[str, object]) -> None:
        """Take up learned weights saved by :meth:`state`; features the shipped model no longer has are dropped
        and new ones start from the shipped weight, so a state outlives a refit of the shipped model."""
        weights = state.get("weights") or {}
        assert isinstance(weights, Mapping)
        self._w = np.array([float(weights.get(n, w0)) for n, w0 in zip(self.names, self._w0)])
        self._b = float(state.get("bias", self._b0))  # type: ignore[arg-type]
        self.updates = int(state.get("updates", 0))  # type: ignore[call-overload]
        self.rejected = int(state.get("rejected", 0))  # type: ignore[call-overload]

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
