"""The hidden-state probe: fitting, its files, and finding the one for a model file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.hidden_probe import HiddenProbe, file_sha256, find_probe, fit_probe, out_of_fold_logits
from inference.router import auroc


def _data(n: int = 400, d: int = 32, seed: int = 0) -> tuple[np.ndarray, list[bool]]:
    """Hidden states where one direction (plus noise) decides the label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d)
    z = x[:, 3] / 2.0 - x[:, 7] + rng.normal(scale=0.8, size=n)
    return x, list(z > 0)


def test_fitted_probe_separates_held_out_rows_and_strong_l2_flattens_it():
    x, y = _data()
    probe = fit_probe(x[:300], y[:300], l2=1.0)
    held = auroc([probe.logit(h) for h in x[300:]], y[300:])
    assert held is not None and held > 0.85
    flat = fit_probe(x[:300], y[:300], l2=1e6)
    assert np.abs(flat.weights).max() < np.abs(probe.weights).max() / 50


def test_out_of_fold_logits_never_score_a_row_with_a_probe_that_saw_it():
    x, y = _data(n=200)
    groups = [f"p{i // 2}" for i in range(200)]  # two runs of each prompt
    oof = out_of_fold_logits(x, y, groups, l2=1.0)
    in_sample = fit_probe(x, y, l2=1.0)
    # the in-sample fit separates its own rows at least as well as the honest out-of-fold logits do
    assert auroc(list(oof), y) <= auroc([in_sample.logit(h) for h in x], y) + 1e-9
    assert auroc(list(oof), y) > 0.8


def test_probe_files_round_trip_and_are_found_by_the_model_files_hash(tmp_path):
    model = tmp_path / "small.gguf"
    model.write_bytes(b"GGUF" + bytes(range(256)) * 10)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + bytes(reversed(range(256))) * 10)  # same size, another hash
    x, y = _data(n=120, d=8)
    probe = fit_probe(x, y, l2=3.0, model_sha256=file_sha256(model), model_size=model.stat().st_size)
    folder = tmp_path / "probes"
    saved = probe.save(folder)
    assert saved.name == f"{file_sha256(model)}.json"
    back = HiddenProbe.from_json(json.loads(saved.read_text()))
    assert back.logit(x[0]) == pytest.approx(probe.logit(x[0]), abs=1e-4)
    found = find_probe(model, [folder])
    assert found is not None and found.logit(x[1]) == pytest.approx(probe.logit(x[1]), abs=1e-4)
    assert find_probe(other, [folder]) is None  # same size, different file: no probe
    assert find_probe(tmp_path / "missing.gguf", [folder]) is None


def test_a_broken_probe_file_is_skipped(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x" * 100)
    folder = tmp_path / "probes"
    folder.mkdir()
    (folder / "a.json").write_text("{not json")
    (folder / "b.json").write_text(json.dumps({"model_sha256": file_sha256(model), "model_size": 100,
                                               "mean": [0.0], "scale": [1.0, 2.0], "weights": [1.0], "bias": 0}))
    assert find_probe(model, [folder]) is None


def test_a_probe_reading_both_states_needs_both():
    x, y = _data(n=120, d=8)
    probe = fit_probe(x, y, l2=3.0, inputs=("prompt", "first"))
    a, b = x[0][:4], x[0][4:]
    assert probe.logit_of(a, b) == pytest.approx(probe.logit(x[0]))
    assert probe.logit_of(a, None) is None
    assert HiddenProbe.from_json(probe.to_json()).inputs == ("prompt", "first")
    with pytest.raises(ValueError, match="unknown probe inputs"):
        HiddenProbe.from_json({**probe.to_json(), "inputs": ["middle"]})
