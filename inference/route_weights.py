"""The shipped escalation-score models and the feature set of each, fitted by ``python -m app.bench.fit_routing``
(see its docstring for the ``ember bench routing --dump`` runs it reads) on the *train* split of
``app/resources/routing_questions.jsonl`` with the starter model as the small tier (greedy answers). The fitted
numbers live in ``route_models.json`` beside this file, with the shipped models' own *validation* split (train
items held out of the fit) that guards online learning (:mod:`inference.route_learning`).

Four models: ``auto`` and ``cascade`` on the signals every model has, and ``auto_probe`` and ``cascade_probe``
that weigh the hidden-state probe too (:mod:`inference.hidden_probe`), for a small model with a fitted probe.

Refit after changing the signals; report figures only on the ``test`` split, which these numbers never saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from inference.route_signals import INTERACTION_FEATURES
from inference.router import ScoreModel, score_model_from_dict

MODELS_FILE = Path(__file__).with_name("route_models.json")

PROMPT_FEATURES = ["log_words", "code", "math", "numbers", "multi_step", "units", "wordplay", "fact", "how_many",
                   "yes_no", "non_ascii", "lines"]
# The bounded probabilities beat the log-probabilities and the six collinear glimpse statistics in 5-fold
# cross-validation on train (log-probabilities have long tails that a logistic score over-weights).
GLIMPSE_FEATURES = ["glimpse_prob_first", "glimpse_prob_min", "glimpse_entropy_mean"]
ANSWER_FEATURES = ["answer_entropy_mean", "answer_entropy_max", "answer_logprob_mean", "answer_logprob_min",
                   "answer_margin_min", "answer_tokens"]
HIDDEN_FEATURES = ["hidden_probe"]
AGREEMENT_FEATURES = ["agreement_words", "agreement_exact"]

AUTO_FEATURES = PROMPT_FEATURES + GLIMPSE_FEATURES + INTERACTION_FEATURES
CASCADE_FEATURES = PROMPT_FEATURES + GLIMPSE_FEATURES + ANSWER_FEATURES + INTERACTION_FEATURES + AGREEMENT_FEATURES
FEATURES: dict[str, list[str]] = {
    "auto": AUTO_FEATURES,
    "cascade": CASCADE_FEATURES,
    "auto_probe": AUTO_FEATURES + HIDDEN_FEATURES,
    "cascade_probe": CASCADE_FEATURES + HIDDEN_FEATURES,
}


def _load() -> tuple[dict[str, ScoreModel], list[tuple[dict[str, float], bool]], dict]:
    data = json.loads(MODELS_FILE.read_text(encoding="utf-8"))
    models = {name: score_model_from_dict(d) for name, d in data["models"].items()}
    validation = [(dict(s), bool(w)) for s, w in data.get("validation", [])]
    return models, validation, data


MODELS, VALIDATION, _DATA = _load()
FITTED_ON: str = str(_DATA.get("note", ""))
AUTO_MODEL = MODELS["auto"]
CASCADE_MODEL = MODELS["cascade"]


def model_name(policy: str, *, probe: bool) -> str:
    """The key of the shipped model for ``policy`` (``auto`` or ``cascade``), with or without the probe."""
    name = f"{policy}_probe" if probe else policy
    return name if name in MODELS else policy


def shipped_model(policy: str, *, probe: bool) -> ScoreModel:
    """The shipped score model of ``policy`` for a small model with (``probe``) or without a hidden-state probe."""
    return MODELS[model_name(policy, probe=probe)]


def uses_agreement(model: ScoreModel) -> bool:
    """Whether ``model`` weighs the cascade's agreement samples (the fit leaves them out when they do not pay)."""
    return any(f in model.weights for f in AGREEMENT_FEATURES)


def validation_split(policy: str, *, probe: bool) -> list[tuple[Mapping[str, float], bool]]:
    """The shipped model's validation split: ``(signals, wrong)`` of train items it was not fitted on. Rows
    without the probe's signal are left out for a probe model."""
    if probe:
        return [(s, w) for s, w in VALIDATION if "hidden_probe" in s]
    return list(VALIDATION)
