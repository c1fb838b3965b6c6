"""The glimpse's hidden-state read on the real starter model: the vector the probe reads, what it costs, and that it
changes nothing about the answer that follows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from app.bench.probe_layers import sweep
from inference.chat_prompt import fit_chat_prompt
from inference.hidden_probe import SHIPPED_DIR, file_sha256, find_probe
from inference.layer_states import LayerStates
from inference.llama_model import ContextParams, LlamaModel
from inference.route_signals import GREEDY, glimpse, probe
from tests.greedy import CAPITAL, assert_greedy_agree, robust_capital
from tests.helpers import starter_path

N = 16


@pytest.fixture(scope="module")
def llm():
    model = LlamaModel(starter_path(), ContextParams(n_ctx=512, n_threads=1, n_batch=64))
    yield model
    model.close()


def test_the_glimpse_reads_the_last_hidden_state_and_keeps_the_prompt_cached(llm):
    prompt = fit_chat_prompt(llm, CAPITAL, N).tokens
    llm.clear()
    g = glimpse(llm, prompt, n_tokens=2, hidden=("prompt", "first"))
    assert g.hidden is not None and g.hidden.shape == (llm.n_embd,) and np.isfinite(g.hidden).all()
    assert np.linalg.norm(g.hidden) > 0 and g.hidden_ms > 0
    assert llm.tokens == prompt and llm.next_logits() is not None  # rolled back, logits put back
    # the same prompt again: the state for exactly these tokens is still held, nothing is evaluated
    same = glimpse(llm, prompt, n_tokens=2, hidden=("prompt", "first"))
    assert same.reused == len(prompt) and same.hidden_ms == 0.0 and (same.hidden == g.hidden).all()
    # cached without its state (a plain turn read it): the last token is evaluated once more, the same state
    llm.clear()
    llm.ingest_prompt(prompt)
    again = glimpse(llm, prompt, n_tokens=2, hidden=("prompt", "first"))
    assert again.reused == len(prompt) - 1 and again.hidden_ms > 0
    cos = float(again.hidden @ g.hidden / (np.linalg.norm(again.hidden) * np.linalg.norm(g.hidden)))
    assert cos > 0.999
    assert g.hidden_next is not None and g.hidden_next.shape == (llm.n_embd,)
    assert float(g.hidden_next @ g.hidden) / (np.linalg.norm(g.hidden_next) * np.linalg.norm(g.hidden)) < 0.999
    # only the state after the first answer token: read in the glimpse's own decode, the prefill is not split
    llm.clear()
    first = glimpse(llm, prompt, n_tokens=2, hidden=("first",))
    assert first.hidden is None and first.hidden_ms == 0.0 and first.hidden_next is not None
    assert float(first.hidden_next @ g.hidden_next) / (np.linalg.norm(first.hidden_next)
                                                        * np.linalg.norm(g.hidden_next)) > 0.999
    # a different question has a different state
    other = fit_chat_prompt(llm, [{"role": "user", "content": "Write a haiku about rain."}], N).tokens
    h2 = glimpse(llm, other, n_tokens=1, hidden=("prompt", "first")).hidden
    assert h2 is not None and float(h2 @ g.hidden / (np.linalg.norm(h2) * np.linalg.norm(g.hidden))) < cos


def test_the_answer_after_a_hidden_glimpse_is_the_plain_answer(llm):
    robust_capital(llm, N)
    prompt = fit_chat_prompt(llm, CAPITAL, N).tokens
    llm.clear()
    plain = probe(llm, prompt, GREEDY, max_tokens=N)
    llm.clear()
    glimpse(llm, prompt, n_tokens=2, hidden=("prompt", "first"))
    after = probe(llm, prompt, GREEDY, max_tokens=N)
    assert after.reused == len(prompt)  # the glimpse's prefill served the answer
    assert_greedy_agree(llm, prompt, after.tokens, plain.tokens)
    assert llm.last_hidden() is None  # the answer's tokens followed: no state is claimed for them


def test_the_shipped_probe_is_found_for_the_starter_file():
    path = starter_path()
    shipped = sorted(Path(SHIPPED_DIR).glob("*.json"))
    if not any(p.stem == file_sha256(path) for p in shipped):
        pytest.fail(f"no shipped probe for the starter ({file_sha256(path)}): refit with python -m "
                    "app.bench.fit_routing --write")
    probe_ = find_probe(path)
    assert probe_ is not None and probe_.model_size == path.stat().st_size


def test_layer_states_read_every_layer_and_end_in_the_hidden_state_the_probe_reads(llm):
    questions = ["What is the capital of France?", "What is 17 times 23?", "Spell the word 'banana' backwards.",
                 "How many legs does a spider have?"]
    prompts = [fit_chat_prompt(llm, [{"role": "user", "content": q}], N).tokens for q in questions]
    with LayerStates(llm, n_ctx=256) as reader:
        read = [reader.read(p) for p in prompts]
        again, _ = reader.read(prompts[0])  # from an empty cache again: no stale cells
    n_layer = reader.n_layer
    assert n_layer > 1
    for layers, final in read:
        assert layers.shape == (n_layer, llm.n_embd) and final.shape == (llm.n_embd,)
        assert np.isfinite(layers).all() and np.isfinite(final).all()
        assert not np.allclose(layers[0], layers[-1])
    assert np.array_equal(again, read[0][0])
    # the final hidden state is the last layer's output through the output RMS norm: one weight vector, fitted on
    # three prompts, predicts the fourth
    normed = [layers[-1] / np.sqrt(np.mean(layers[-1].astype(np.float64) ** 2) + 1e-5) for layers, _ in read]
    finals = [final.astype(np.float64) for _, final in read]
    w = sum(f * n for f, n in zip(finals[:3], normed[:3])) / sum(n * n for n in normed[:3])
    assert np.linalg.norm(finals[3] - normed[3] * w) / np.linalg.norm(finals[3]) < 1e-3
    # and it is the state the glimpse reads for the same prompt (its last token evaluated on its own there)
    llm.clear()
    g = glimpse(llm, prompts[0], n_tokens=1, hidden=("prompt",))
    cos = float(g.hidden @ read[0][1] / (np.linalg.norm(g.hidden) * np.linalg.norm(read[0][1])))
    assert cos > 0.99


def test_the_layer_sweep_scores_a_probe_on_every_layer_from_a_dump(tmp_path):
    capitals = ["France", "Japan", "Italy", "Germany", "Spain", "Egypt", "Canada", "Kenya", "Peru", "Chile"]
    rows = [{"prompt": f"What is the capital of {c}?", "correct": True} for c in capitals]
    rows += [{"prompt": f"What is {a} times {a + 7}?", "correct": False} for a in range(13, 23)]
    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(json.dumps({**r, "split": "train"}) + "\n" for r in rows), encoding="utf-8")
    result = sweep([dump], starter_path(), every=10)
    fitted = [r for r in rows if int(hashlib.sha256(r["prompt"].encode()).hexdigest(), 16) % 5]
    assert result["rows"] == len(fitted) and result["n_layer"] > 10
    assert sorted(result["per_layer_auroc"]) == list(range(0, result["n_layer"], 10))
    # two kinds of question the model tells apart in its own state: a probe separates them out of fold
    assert result["final_state_auroc"] > 0.8 and max(result["per_layer_auroc"].values()) > 0.8
    assert set(result["learning_curve"]) == {"0.4", "0.6", "0.8", "1.0"}
