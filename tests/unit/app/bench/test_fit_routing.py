"""The offline refit of the router's score models (``python -m app.bench.fit_routing``): train items only, L2 chosen by
cross-validation, output that is valid Python for ``inference/route_weights.py``."""

from __future__ import annotations

import functools
import json
import math

import pytest

from app.bench.fit_routing import choose_and_fit, cross_validate, item_features, load_train, main
from inference.router import ScoreModel


def _dump(path, n: int = 40) -> None:
    lines = []
    for i in range(n):
        wrong = i % 2 == 0
        p = 0.3 if wrong else 0.95  # the glimpse is unsure exactly when the answer is wrong
        steps = [[1.0 if wrong else 0.1, math.log(p), 0.1 if wrong else 0.9]] * 3
        lines.append({"prompt": f"What is {i} + {i}?", "split": "train", "category": "arithmetic",
                      "correct": not wrong, "steps": steps})
    lines.append({"prompt": "held out", "split": "test", "correct": False, "steps": []})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")


def test_load_train_reads_only_the_train_split(tmp_path):
    _dump(tmp_path / "a.jsonl")
    rows = load_train([tmp_path / "a.jsonl"])
    assert len(rows) == 40 and all(p != "held out" for p, _, _ in rows)
    prompt, feats, wrong = rows[0]
    assert wrong and feats["glimpse_prob_first"] == pytest.approx(0.3) and "math" in feats
    assert feats["glimpse_tokens"] == pytest.approx(math.log1p(2))
    assert feats["answer_tokens"] == pytest.approx(math.log1p(3))


def test_item_features_glimpse_is_the_first_answer_tokens():
    f = item_features("Hi", [[0.5, -0.1, 0.8], [2.0, -2.0, 0.1]], glimpse_tokens=1)
    assert f["glimpse_entropy_mean"] == pytest.approx(0.5) and f["answer_entropy_mean"] == pytest.approx(1.25)


def test_cross_validation_finds_a_separable_signal(tmp_path, monkeypatch):
    import app.bench.fit_routing

    _dump(tmp_path / "a.jsonl")
    rows = load_train([tmp_path / "a.jsonl"])
    assert cross_validate(rows, ["glimpse_prob_first"], 1.0, repeats=1) > 0.95
    monkeypatch.setattr(app.bench.fit_routing, "cross_validate", functools.partial(cross_validate, repeats=2))
    model, l2, cv = choose_and_fit(rows, ["glimpse_prob_first", "log_words"], grid=(1.0, 10.0))
    assert isinstance(model, ScoreModel) and l2 in cv and model.weights["glimpse_prob_first"] < 0


def test_main_prints_python_for_route_weights(tmp_path, capsys, monkeypatch):
    import app.bench.fit_routing

    # one random split per cross-validation instead of four: the output's form is under test, not its numbers
    monkeypatch.setattr(app.bench.fit_routing, "cross_validate", functools.partial(cross_validate, repeats=1))
    monkeypatch.setattr(app.bench.fit_routing, "choose_and_fit", functools.partial(choose_and_fit, grid=(1.0, 10.0)))
    _dump(tmp_path / "a.jsonl")
    assert main([str(tmp_path / "a.jsonl")]) == 0
    ns: dict = {"ScoreModel": ScoreModel}
    printed = capsys.readouterr()
    exec(printed.out, ns)  # noqa: S102 - our own generated code
    assert isinstance(ns["AUTO_MODEL"], ScoreModel) and isinstance(ns["CASCADE_MODEL"], ScoreModel)
    assert printed.err.count("without the glimpse interactions") == 2  # the ablation behind route_weights' note


def test_bench_dump_round_trips_into_the_fit(tmp_path):
    from app.bench.routing import Item, dump_items

    items = [Item("What is 2 + 2?", ["4"], "train", "arithmetic", reply="4", correct=True, signals={},
                  steps=[(0.1, -0.01, 0.9)]),
             Item("What is 3 + 3?", ["6"], "test", "arithmetic", reply="7", correct=False, signals={}, steps=[])]
    dump_items(items, tmp_path / "d.jsonl", threads=1)
    rows = load_train([tmp_path / "d.jsonl"])
    assert [(p, w) for p, _, w in rows] == [("What is 2 + 2?", False)]
    assert rows[0][1]["glimpse_prob_first"] == pytest.approx(math.exp(-0.01))
