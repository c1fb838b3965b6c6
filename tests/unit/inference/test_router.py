"""The escalation score, its fitting, threshold calibration and ranking metrics."""

import math
import random

import numpy as np
import pytest

from inference.router import (RouteDecision, ScoreModel, auroc, auroc_interval, calibrate_threshold, caught_at_rate,
                              fit_score_model)


def test_score_is_a_probability_and_grows_with_positive_weights():
    m = ScoreModel(bias=0.0, weights={"a": 2.0, "b": -1.0}, centre={"a": 1.0}, scale={"a": 0.5})
    assert m.score({"a": 1.0, "b": 0.0}) == pytest.approx(0.5)
    assert m.score({"a": 2.0}) > m.score({"a": 1.5}) > 0.5
    assert m.score({"b": 3.0}) < 0.5
    assert 0.0 <= m.score({"a": 1e9}) <= 1.0 and 0.0 <= m.score({"a": -1e9}) <= 1.0


def test_missing_or_non_finite_features_count_as_their_centre():
    m = ScoreModel(bias=0.3, weights={"a": 1.0}, centre={"a": 5.0})
    assert m.score({}) == m.score({"a": 5.0}) == m.score({"a": math.nan})


def test_fit_learns_the_informative_feature():
    rng = random.Random(0)
    rows, labels = [], []
    for _ in range(400):
        wrong = rng.random() < 0.4
        rows.append({"signal": rng.gauss(1.0 if wrong else 0.0, 0.7), "noise": rng.gauss(0, 1)})
        labels.append(wrong)
    m = fit_score_model(rows, labels, names=["signal", "noise"])
    assert m.weights["signal"] > 1.0 and abs(m.weights["noise"]) < 0.3
    assert auroc([m.score(r) for r in rows], labels) > 0.8
    assert set(m.as_dict()) == {"bias", "weights", "centre", "scale"}


def test_calibrated_threshold_holds_the_target_rate():
    rng = random.Random(1)
    seen = [rng.betavariate(2, 5) for _ in range(2000)]
    new = [rng.betavariate(2, 5) for _ in range(2000)]
    for rate in (0.1, 0.25, 0.5):
        thr = calibrate_threshold(seen, rate)
        escalated = sum(s >= thr for s in new) / len(new)
        assert escalated == pytest.approx(rate, abs=0.03)


def test_calibration_edges_and_default_without_enough_scores():
    assert calibrate_threshold([0.1] * 5, 0.25, default=0.7, min_samples=20) == 0.7
    assert calibrate_threshold([0.2, 0.4] * 50, 0.0) > 1.0
    assert calibrate_threshold([0.2, 0.4] * 50, 1.0) == 0.0


def test_auroc_and_caught_at_rate():
    scores = [0.9, 0.8, 0.3, 0.2, 0.1]
    wrong = [True, False, True, False, False]
    assert auroc(scores, wrong) == pytest.approx(5 / 6)
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.1], [True]) is None
    assert caught_at_rate(scores, wrong, 0.2) == 0.5  # the top score is wrong: 1 of 2 caught
    assert caught_at_rate(scores, wrong, 0.6) == 1.0


def test_decision_stats_have_the_fields_the_gui_badge_reads():
    from ui.reply_stats import tier_badge

    d = RouteDecision("auto", "large", 0.81234, 0.6, {"math": 1.0}, 3.2, escalated=True)
    stats = {"router": d.stats(model="big")}
    text, hover = tier_badge(stats)
    assert text == "large ↑" and "0.81" in hover and "big" in hover


def test_auroc_interval_brackets_the_estimate_and_narrows_with_more_items():
    rng = np.random.default_rng(1)
    def sample(n):
        wrong = rng.random(n) < 0.5
        return list(rng.normal(0, 1, n) + wrong * 1.0), list(wrong)  # true AUROC about 0.76
    small, large = sample(60), sample(600)
    lo_s, hi_s = auroc_interval(*small)
    lo_l, hi_l = auroc_interval(*large)
    assert lo_s <= auroc(*small) <= hi_s and lo_l <= auroc(*large) <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 2  # about 1/sqrt(10) as wide
    assert lo_l < 0.76 < hi_l
    assert auroc_interval([0.1, 0.2], [True, True]) is None
