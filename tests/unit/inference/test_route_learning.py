"""The router learns from the user's labels: escalations raise the score of that kind of query, kept answers lower
it, the validation guard holds the shipped AUROC, a reset is exact, and the state survives storage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference import route_weights
from inference.route_learning import OnlineRouter
from inference.router import auroc
from inference.route_weights import AUTO_MODEL
from storage.database import open_database
from storage.routing import RoutingStore

# One kind of query: a sum with numbers, on which the small model was unsure at its first token.
SUM = {"log_words": 2.0, "math": 1.0, "numbers": 0.75, "glimpse_prob_first": 0.3, "glimpse_prob_min": 0.2,
       "glimpse_entropy_mean": 1.5}
FACT = {"log_words": 2.2, "fact": 1.0, "glimpse_prob_first": 0.9, "glimpse_prob_min": 0.8,
        "glimpse_entropy_mean": 0.3}


def _validation(n: int = 300, seed: int = 0) -> list[tuple[dict[str, float], bool]]:
    """A validation split of a user for whom sums are harder and facts easier than the shipped weights think: items
    drawn around the shipped model's centre, labelled with its logit plus those terms (so labels like the user's
    move the learned model towards that world, and the guard lets them)."""
    extra = {"math": 1.5, "numbers": 1.5, "fact": -1.5, "glimpse_prob_first": -1.0}
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = {k: AUTO_MODEL.centre.get(k, 0.0) + rng.normal() * (AUTO_MODEL.scale.get(k, 1.0) or 1.0)
             for k in AUTO_MODEL.weights}
        p = AUTO_MODEL.score(s)
        z = math.log(p / (1 - p)) + sum(w * (s[k] - AUTO_MODEL.centre[k]) / (AUTO_MODEL.scale[k] or 1.0)
                                        for k, w in extra.items())
        out.append((s, bool(rng.random() < 1 / (1 + math.exp(-z)))))
    return out


@pytest.fixture
def learner() -> OnlineRouter:
    return OnlineRouter(AUTO_MODEL, validation=_validation())


def test_wrong_labels_raise_that_kinds_score_and_keep_the_validation_auroc(learner):
    shipped_score, shipped_auroc = AUTO_MODEL.score(SUM), learner.validation_auroc()
    assert shipped_auroc is not None
    for _ in range(20):
        learner.update(SUM, True)
    assert learner.score(SUM) > shipped_score + 0.05
    assert learner.validation_auroc() >= shipped_auroc
    assert learner.updates == 20
    assert learner.model.score(SUM) == pytest.approx(learner.score(SUM))  # the ScoreModel the router scores with


def test_right_labels_lower_it(learner):
    before = learner.score(FACT)
    for _ in range(20):
        learner.update(FACT, False)
    assert learner.score(FACT) < before - 0.05
    assert learner.validation_auroc() >= OnlineRouter(AUTO_MODEL, validation=learner.validation).validation_auroc()


def test_reset_restores_the_shipped_score_exactly(learner):
    for wrong in (True, False, True):
        learner.update(SUM, wrong)
    learner.reset()
    assert learner.score(SUM) == AUTO_MODEL.score(SUM) and learner.updates == 0
    assert learner.model.weights == dict(AUTO_MODEL.weights) and learner.model.bias == AUTO_MODEL.bias


def test_state_round_trips_through_storage(learner):
    for _ in range(5):
        learner.update(SUM, True)
    store = RoutingStore(open_database(":memory:"))
    assert store.load_learned("auto") is None
    store.save_learned("auto", learner.state())
    again = OnlineRouter(AUTO_MODEL, validation=learner.validation)
    again.restore(store.load_learned("auto"))
    assert again.score(SUM) == learner.score(SUM) and again.updates == 5
    assert auroc([again.score(s) for s, _ in again.validation], [w for _, w in again.validation]) == \
        pytest.approx(learner.validation_auroc(), abs=1e-9)
    store.clear_learned()
    assert store.load_learned("auto") is None


def test_on_the_shipped_split_the_guard_never_lets_the_auroc_fall():
    validation = route_weights.validation_split("auto", probe=False)
    if not validation:
        pytest.skip("no shipped validation split")
    learner = OnlineRouter(AUTO_MODEL, validation=validation)
    shipped = learner.validation_auroc()
    for i in range(30):
        learner.update(SUM if i % 2 else FACT, bool(i % 2))
        assert learner.validation_auroc() >= shipped
