"""The glimpse's hidden-state read on the real starter model: the vector the probe reads, what it costs, and that it
changes nothing about the answer that follows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.chat_prompt import fit_chat_prompt
from inference.hidden_probe import SHIPPED_DIR, file_sha256, find_probe
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
