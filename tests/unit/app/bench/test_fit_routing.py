"""The offline refit of the router's score models and hidden-state probe (``python -m app.bench.fit_routing``): train
items only, L2 chosen by cross-validation, a held-out validation split, the models JSON that
``inference/route_weights.py`` reads."""

from __future__ import annotations

import functools
import json
import math

import pytest

from app.bench.fit_routing import choose_and_fit, cross_validate, item_features, load_train, main
from inference.hidden_probe import HiddenProbe
from inference.router import ScoreModel, score_model_from_dict


def _dump(path, n: int = 40, *, hidden: bool = False) -> None:
    lines = []
    for i in range(n):
        wrong = i % 2 == 0
        p = 0.3 if wrong else 0.95  # the glimpse is unsure exactly when the answer is wrong
        steps = [[1.0 if wrong else 0.1, math.log(p), 0.1 if wrong else 0.9]] * 3
        line = {"prompt": f"What is {i} + {i}?", "split": "train", "category": "arithmetic",
                "correct": not wrong, "steps": steps, "model_sha256": "ab" * 32, "model_size": 1234}
        if hidden:  # a hidden state whose first coordinate says "wrong", the rest noise
            line["hidden"] = [(1.0 if wrong else -1.0) + 0.3 * math.sin(i * 7 + k) if k == 0 else
                              math.cos(i * 3 + k) for k in range(6)]
        lines.append(line)
    lines.append({"prompt": "held out", "split": "test", "correct": False, "steps": []})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")


def test_load_train_reads_only_the_train_split(tmp_path):
    _dump(tmp_path / "a.jsonl")
    rows = load_train([tmp_path / "a.jsonl"])
    assert len(rows) == 40 and all(r.prompt != "held out" for r in rows)
    prompt, feats, wrong = rows[0].as_tuple()
    assert wrong and feats["glimpse_prob_first"] == pytest.approx(0.3) and "math" in feats
    assert feats["glimpse_tokens"] == pytest.approx(math.log1p(2))
    assert feats["answer_tokens"] == pytest.approx(math.log1p(3))


def test_item_features_glimpse_is_the_first_answer_tokens():
    f = item_features("Hi", [[0.5, -0.1, 0.8], [2.0, -2.0, 0.1]], glimpse_tokens=1)
    assert f["glimpse_entropy_mean"] == pytest.approx(0.5) and f["answer_entropy_mean"] == pytest.approx(1.25)


def test_cross_validation_finds_a_separable_signal(tmp_path, monkeypatch):
    import app.bench.fit_routing

    _dump(tmp_path / "a.jsonl")
    rows = [r.as_tuple() for r in load_train([tmp_path / "a.jsonl"])]
    assert cross_validate(rows, ["glimpse_prob_first"], 1.0, repeats=1) > 0.95
    monkeypatch.setattr(app.bench.fit_routing, "cross_validate", functools.partial(cross_validate, repeats=2))
    model, l2, cv = choose_and_fit(rows, ["glimpse_prob_first", "log_words"], grid=(1.0, 10.0))
    assert isinstance(model, ScoreModel) and l2 in cv and model.weights["glimpse_prob_first"] < 0


def _quick(monkeypatch) -> None:
    import app.bench.fit_routing

    # one random split per cross-validation instead of four: the output's form is under test, not its numbers
    monkeypatch.setattr(app.bench.fit_routing, "cross_validate", functools.partial(cross_validate, repeats=1))
    monkeypatch.setattr(app.bench.fit_routing, "choose_and_fit", functools.partial(choose_and_fit, grid=(1.0, 10.0)))
    monkeypatch.setattr(app.bench.fit_routing, "PROBE_L2_GRID", (10.0,))


def test_main_prints_the_models_without_a_probe_when_dumps_lack_hidden_states(tmp_path, capsys, monkeypatch):
    _quick(monkeypatch)
    _dump(tmp_path / "a.jsonl")
    assert main([str(tmp_path / "a.jsonl")]) == 0
    printed = capsys.readouterr()
    models = json.loads(printed.out)
    assert set(models) == {"auto", "cascade"} and "no hidden-state probe" in printed.err
    for d in models.values():
        assert isinstance(score_model_from_dict(d), ScoreModel) and set(d["weights"]) == set(d["features"])


def test_main_fits_the_probe_on_train_rows_and_holds_out_a_validation_split(tmp_path, capsys, monkeypatch):
    import app.bench.fit_routing
    from inference import route_weights

    _quick(monkeypatch)
    _dump(tmp_path / "a.jsonl", hidden=True)
    models_file = tmp_path / "route_models.json"
    monkeypatch.setattr(route_weights, "MODELS_FILE", models_file)
    monkeypatch.setattr(app.bench.fit_routing, "SHIPPED_DIR", tmp_path / "probes")
    assert main([str(tmp_path / "a.jsonl"), "--write"]) == 0
    data = json.loads(models_file.read_text())
    assert set(data["models"]) == {"auto", "cascade", "auto_probe", "cascade_probe"}
    assert data["models"]["auto_probe"]["weights"]["hidden_probe"] > 0  # its logit says "wrong"
    rows = load_train([tmp_path / "a.jsonl"])
    held = {r.prompt for r in rows if r.held_out}
    assert 0 < len(data["validation"]) == len(held) < len(rows)
    probe = HiddenProbe.from_json(json.loads((tmp_path / "probes" / f"{'ab' * 32}.json").read_text()))
    assert probe.model_size == 1234 and len(probe.weights) == 6


def test_bench_dump_round_trips_into_the_fit(tmp_path):
    from app.bench.routing import Item, dump_items

    items = [Item("What is 2 + 2?", ["4"], "train", "arithmetic", reply="4", correct=True, signals={},
                  steps=[(0.1, -0.01, 0.9)]),
             Item("What is 3 + 3?", ["6"], "test", "arithmetic", reply="7", correct=False, signals={}, steps=[])]
    dump_items(items, tmp_path / "d.jsonl", threads=1)
    rows = load_train([tmp_path / "d.jsonl"])
    assert [(r.prompt, r.wrong) for r in rows] == [("What is 2 + 2?", False)]
    assert rows[0].features["glimpse_prob_first"] == pytest.approx(math.exp(-0.01))
