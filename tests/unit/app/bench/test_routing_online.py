"""``ember bench routing --online``: the prequential replay of user labels through the online learner."""

from __future__ import annotations

import numpy as np
import pytest

from app.bench.routing_online import format_online, simulate_online
from inference.router import ScoreModel


def _stream(n: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    """A user whose wrong answers follow ``numbers``, a signal the shipped model gives no weight."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        numbers = float(rng.random() < 0.5)
        noise = float(rng.normal())
        rows.append(({"numbers": numbers, "noise": noise}, bool(rng.random() < (0.8 if numbers else 0.2))))
    return rows


SHIPPED = ScoreModel(bias=0.0, weights={"numbers": 0.0, "noise": 0.5}, centre={"numbers": 0.5, "noise": 0.0},
                     scale={"numbers": 0.5, "noise": 1.0})


def test_learning_from_the_stream_beats_the_shipped_score_later_in_it():
    result = simulate_online(_stream(400, 1), SHIPPED, (), windows=4, orders=3)
    first, last = result["windows"][0], result["windows"][-1]
    assert last["learned_auroc"] > last["shipped_auroc"] + 0.1
    assert last["learned_auroc"] > first["learned_auroc"]  # it got better as labels came in
    assert result["updates"] == 400
    assert "items 301-400" in format_online(result)


def test_the_validation_guard_keeps_the_learned_model_from_falling_below_the_shipped_one():
    # the validation split says "noise" matters and "numbers" does not: learning "numbers" would hurt it
    rng = np.random.default_rng(5)
    validation = [({"numbers": float(rng.random() < 0.5), "noise": x}, bool(x > 0)) for x in rng.normal(size=80)]
    stream = [({"numbers": s["numbers"], "noise": -s["noise"]}, w) for s, w in _stream(200, 2)]
    result = simulate_online(stream, SHIPPED, validation, windows=2, orders=2)
    assert result["validation_auroc"]["learned_min"] >= result["validation_auroc"]["shipped"]
    assert result["rejected_by_guard"] > 0


def test_too_short_a_stream_is_refused():
    with pytest.raises(ValueError, match="at least"):
        simulate_online(_stream(10, 0), SHIPPED, (), windows=4)


def test_bench_routing_replays_a_dump_and_reports_the_online_curve(tmp_path):
    """``ember bench routing --replay DUMP --online``: items, labels and signals from a dump, nothing answered."""
    import json
    import math

    from app.bench.routing import bench_routing
    from app.core import Ember
    from app.paths import Paths

    lines = []
    for i in range(80):
        wrong = i % 3 == 0
        p = 0.3 if wrong else 0.9
        lines.append(json.dumps({"prompt": f"How many legs have {i} spiders?", "split": "test" if i % 2 else "train",
                                 "category": "arithmetic", "correct": not wrong, "reply": "",
                                 "steps": [[1.0, math.log(p), 0.2]] * 4, "hidden": None}))
    dump = tmp_path / "d.jsonl"
    dump.write_text("\n".join(lines) + "\n")
    core = Ember.open(Paths(tmp_path / "home"))
    try:
        result = bench_routing(core, replay=[dump], online=True, split="all")
    finally:
        core.close()
    assert result["items"] == 80 and result["replayed_from"] == [str(dump)] and not result["hidden_probe"]
    # the labels follow the glimpse's confidence exactly, so any score of it orders them perfectly, one way or the other
    assert result["auroc"] in (0.0, 1.0)
    assert len(result["online"]["windows"]) == 4 and result["online"]["updates"] == 80
