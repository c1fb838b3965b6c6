"""Prompt features and per-token uncertainty."""

import math

import numpy as np
import pytest

from inference.route_signals import (INTERACTION_FEATURES, INTERACTIONS, TokenUncertainty, prompt_features,
                                     route_signals, token_uncertainty, uncertainty_features)


def test_features_flag_math_code_steps_units_language():
    f = prompt_features("What is 12 * 7?")
    assert f["math"] == 1.0 and f["numbers"] > 0 and f["code"] == 0.0
    assert prompt_features("def add(a, b):\n    return a + b\nWhat does this do?")["code"] == 1.0
    assert prompt_features("Explain step by step why the sky is blue.")["multi_step"] == 1.0
    assert prompt_features("How many centimeters are in a meter?")["units"] == 1.0
    assert prompt_features("Spell the word 'dog' backwards.")["wordplay"] == 1.0
    assert prompt_features("What is the capital of France?")["fact"] == 1.0
    assert prompt_features("Quelle est la capitale de l'Éthiopie ? Réponds en français.")["non_ascii"] > 0
    assert prompt_features("Wie heißt die Hauptstadt?")["non_ascii"] > 0
    assert prompt_features("Hello")["non_ascii"] == 0.0


def test_features_grow_with_length_and_are_floats():
    short, long = prompt_features("Hi"), prompt_features("word " * 200)
    assert long["log_words"] > short["log_words"]
    assert all(isinstance(v, float) for v in short.values())


def test_token_uncertainty_of_peaked_and_flat_rows():
    peaked = np.full(100, -10.0, dtype=np.float32)
    peaked[7] = 10.0
    u = token_uncertainty(peaked, 7)
    assert u.entropy < 0.01 and u.logprob == pytest.approx(0.0, abs=1e-6) and u.margin > 0.99
    flat = np.zeros(100, dtype=np.float32)
    v = token_uncertainty(flat, 3)
    assert v.entropy == pytest.approx(math.log(100)) and v.logprob == pytest.approx(-math.log(100))
    assert v.margin == pytest.approx(0.0)


def test_uncertainty_summary():
    flat = np.zeros(10)
    peaked = np.array([10.0] + [0.0] * 9)
    steps = [token_uncertainty(peaked, 0), token_uncertainty(flat, 1)]
    f = uncertainty_features(steps, "g")
    assert f["g_entropy_first"] < f["g_entropy_mean"] < f["g_entropy_max"] == pytest.approx(math.log(10))
    assert f["g_logprob_min"] == pytest.approx(-math.log(10))
    assert uncertainty_features([], "g")["g_entropy_mean"] == 0.0


def test_uncertainty_probabilities_are_bounded_and_ordered():
    flat = np.zeros(10)
    peaked = np.array([10.0] + [0.0] * 9)
    f = uncertainty_features([token_uncertainty(peaked, 0), token_uncertainty(flat, 1)], "g")
    assert 0.99 < f["g_prob_first"] <= 1.0 and f["g_margin_first"] > 0.99
    assert f["g_prob_min"] == pytest.approx(0.1)
    assert f["g_prob_min"] < f["g_prob_mean"] < f["g_prob_first"]
    empty = uncertainty_features([], "g")
    assert empty["g_prob_first"] == 0.0 and set(empty) == set(f)


def test_route_signals_add_glimpse_interactions_only_with_a_glimpse():
    steps = [TokenUncertainty(entropy=2.0, logprob=-0.5, margin=0.3), TokenUncertainty(1.0, -0.1, 0.8)]
    prompt_only = route_signals("What is 17 * 23?", None)
    assert prompt_only == prompt_features("What is 17 * 23?")  # no glimpse: nothing pretends to be one
    auto = route_signals("What is 17 * 23?", steps)
    assert auto["math"] == 1.0 and auto["glimpse_prob_first"] == pytest.approx(math.exp(-0.5))
    for g, kind in INTERACTIONS:
        assert auto[f"{g}*{kind}"] == pytest.approx(auto[g] * auto[kind])
    assert auto["glimpse_prob_first*math"] > 0 and auto["glimpse_prob_first*wordplay"] == 0
    assert not any(k.startswith("answer_") for k in auto)
    cascade = route_signals("What is 17 * 23?", steps[:1], steps)
    assert cascade["answer_tokens"] == pytest.approx(math.log1p(2)) and cascade["glimpse_tokens"] == pytest.approx(
        math.log1p(1))
    assert set(INTERACTION_FEATURES) <= set(cascade)


def test_agreement_features_measure_how_far_samples_say_the_same():
    from inference.route_signals import agreement_features

    same = agreement_features("The capital of France is Paris.", ["The capital of France is Paris."] * 3)
    assert same == {"agreement_words": 1.0, "agreement_exact": 1.0}
    mixed = agreement_features("Paris is the capital.", ["Paris is the capital.", "It is Lyon, a city.",
                                                         "Marseille."])
    assert 0.0 < mixed["agreement_words"] < 1.0 and mixed["agreement_exact"] == pytest.approx(1 / 3)
    assert agreement_features("anything", []) == {}


def test_route_signals_carry_the_probe_and_agreement_only_when_given():
    from inference.route_signals import route_signals

    plain = route_signals("What is 2 + 2?", None)
    assert "hidden_probe" not in plain and "agreement_words" not in plain
    full = route_signals("What is 2 + 2?", None, hidden_probe=1.5,
                         agreement={"agreement_words": 0.5, "agreement_exact": 0.0})
    assert full["hidden_probe"] == 1.5 and full["agreement_words"] == 0.5
