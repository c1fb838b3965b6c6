"""Saved KV states that cannot be restored: a refused state, and states written by another llama.cpp build."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from inference.events import GenerationStats
from inference.generate import generate
from inference.kv_state import StateCache
from inference.llama_model import ContextParams, LlamaModel
from inference.sampling import SamplingOptions
from tests.greedy import assert_greedy_agree
from tests.helpers import starter_path

GREEDY = SamplingOptions(temperature=0.0, max_tokens=16)
NOTES = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHere are my notes. "
         + " ".join(f"Note {i}: the chapter on {t} needs review before Friday." for i, t in
                    enumerate(["volcanoes", "the moon", "bread", "trains", "the ocean", "music", "chess", "rain"]))
         + " Summarise them in one sentence.<|im_end|>\n<|im_start|>assistant\n")
OTHER = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def model():
    llm = LlamaModel(starter_path(), ContextParams(n_ctx=1024, n_threads=1))
    yield llm
    llm.close()


def prompts(model: LlamaModel) -> tuple[list[int], list[int]]:
    """A long prompt, and a short one sharing its system prompt (so switching to it saves the long one)."""
    long = model.tokenize(NOTES, add_special=True)
    shared = long.index(model.tokenize("<|im_start|>user", add_special=False)[0], 1)
    short = long[:shared] + model.tokenize(OTHER, add_special=False)
    assert shared > 4 and len(long) > 100 and len(short) - shared < 16
    return long, short


def reply(model: LlamaModel, prompt: list[int], states: StateCache | None) -> tuple[str, GenerationStats]:
    parts: list[str] = []
    stats = generate(model, prompt, GREEDY, should_stop=lambda: False, on_text=parts.append, states=states)
    return "".join(parts), stats


@pytest.mark.allow_log_warnings
def test_a_state_llama_cpp_refuses_gives_the_cold_reply_and_is_dropped(model, caplog: pytest.LogCaptureFixture):
    long, short = prompts(model)
    model.clear()
    cold_text, _ = reply(model, long, None)
    model.clear()
    states = StateCache(None, min_tokens=16)
    model.ingest_prompt(long, states=states)
    model.ingest_prompt(short, states=states)  # switching away saves the long conversation's state
    saved = states.best(model.model_key, long)
    assert saved is not None and len(states) == 1
    states.put(model.model_key, saved[0].tokens, saved[0].data[: len(saved[0].data) // 2])  # a damaged state

    text, stats = reply(model, long, states)
    assert model.tokens[:len(long)] == long, "the cache must hold the whole prompt from position 0"
    assert stats.cached_tokens == 0  # the refused restore emptied the cache: nothing was reused
    assert_greedy_agree(model, long, text, cold_text)  # both evaluated the prompt from scratch
    assert len(states) == 0, "a state llama.cpp refused must be dropped, not tried again every turn"
    assert any("refused a saved KV state" in r.getMessage() for r in caplog.records)


def test_states_saved_by_another_llama_cpp_build_are_never_tried(model, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    long, short = prompts(model)
    model.clear()
    monkeypatch.setattr(llama_cpp, "__version__", "0.0.1-another-build")
    written = StateCache(tmp_path, ram_budget=0, min_tokens=16)
    model.ingest_prompt(long, states=written)
    model.ingest_prompt(short, states=written)
    assert list(tmp_path.glob("*.kvstate"))
    monkeypatch.undo()
    assert llama_cpp.__version__ in model.model_key

    model.clear()
    reused = model.ingest_prompt(long, states=StateCache(tmp_path, ram_budget=0, min_tokens=16))
    assert reused == 0 and model.tokens == long


def test_a_conversation_set_aside_is_a_donor_at_once_and_saved_when_flushed():
    llm = LlamaModel(starter_path(), ContextParams(n_ctx=1024, n_threads=1, n_seq=2, n_park=1))
    try:
        long, short = prompts(llm)
        states = StateCache(None, min_tokens=16)
        llm.select(0)
        cold_text, _ = reply(llm, long, None)
        held = list(llm.tokens)
        llm.ingest_prompt(short, states=states)  # the slot takes another prompt: the old one is parked, not saved
        assert len(states) == 0 and llm.tokens[:len(short)] == short
        assert llm.memory["sequences"] == 2
        # another slot continues the parked conversation: its cells are copied, nothing is evaluated again
        llm.select(1)
        reused = llm.ingest_prompt(held + llm.tokenize("\nThanks!", add_special=False), states=states)
        assert reused == len(held)
        llm.clear()
        # the engine, idle, saves it into the state cache and frees the parking id; the selection stays
        llm.select(0)
        assert llm.flush_parked(states) and not llm.flush_parked(states)
        assert llm.seq == 0 and llm.tokens[:len(short)] == short
        saved = states.best(llm.model_key, long)
        assert saved is not None and list(saved[0].tokens) == held
        # and the saved state gives the same reply as the cold one
        llm.select(1)
        text, stats = reply(llm, long, states)
        assert stats.cached_tokens >= len(long) - 1
        assert_greedy_agree(llm, long, text, cold_text)
    finally:
        llm.close()
