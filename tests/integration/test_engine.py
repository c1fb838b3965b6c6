"""The engine on the real starter model through llama.cpp."""

import threading
import time

import pytest

from inference.engine import ChatResult, EngineService, ModelSpec
from inference.errors import EngineError, LoadCancelled, ModelLoadError
from inference.events import Failed, Finished, LoadProgress, TokenText
from inference.llama_model import ContextParams
from inference.sampling import SamplingOptions
from tests.greedy import CAPITAL as QUESTION
from tests.greedy import robust_capital
from tests.helpers import starter_path

GREEDY = SamplingOptions(temperature=0.0, max_tokens=32)


@pytest.fixture(scope="module")
def engine():
    eng = EngineService().start()
    spec = ModelSpec("starter", starter_path(), ContextParams(n_ctx=2048))
    events = []
    eng.load(spec, on_event=events.append).wait(60)
    assert any(isinstance(e, LoadProgress) for e in events) and isinstance(events[-1], Finished)
    yield eng
    eng.shutdown()


def test_streams_tokens_then_finishes_with_stats(engine):
    expected = engine.call(lambda llm: robust_capital(llm, GREEDY.max_tokens, whole=True)).wait(60)
    events = list(engine.chat(QUESTION, GREEDY))
    tokens = [e.text for e in events if isinstance(e, TokenText)]
    final = events[-1]
    assert isinstance(final, Finished) and isinstance(final.result, ChatResult)
    assert len(tokens) > 3 and "".join(tokens) == final.result.text
    assert "Paris" in final.result.text and final.result.text == expected.text
    s = final.stats
    assert s.prompt_tokens > 10 and s.completion_tokens == len(tokens)
    assert s.ttft_ms > 0 and s.tokens_per_s > 0 and s.finish_reason == "stop"


def test_stop_flag_ends_generation_within_200_ms(engine):
    story = [{"role": "user", "content": "Write a very long story about a dragon and a knight."}]
    handle = engine.chat(story, SamplingOptions(temperature=0.8, seed=3, max_tokens=4000))
    got_first = threading.Event()
    stopped_at = {}

    def reader():
        for ev in handle:
            if isinstance(ev, TokenText) and not got_first.is_set():
                got_first.set()
            if isinstance(ev, Finished):
                stopped_at["t"] = time.perf_counter()
                stopped_at["stats"] = ev.stats

    t = threading.Thread(target=reader)
    t.start()
    assert got_first.wait(30)
    time.sleep(0.3)  # let it stream for a while
    cancel_time = time.perf_counter()
    handle.cancel()
    t.join(10)
    assert stopped_at["stats"].finish_reason == "cancelled"
    assert stopped_at["t"] - cancel_time < 0.2
    assert 0 < stopped_at["stats"].completion_tokens < 4000


def test_second_turn_reuses_the_cached_history(engine):
    engine.reset().wait()
    history = [{"role": "system", "content": "You are a helpful assistant. " + "Be precise and kind. " * 60},
               {"role": "user", "content": "Name a primary colour."}]
    first = engine.chat(history, GREEDY).wait()
    assert first.stats.cached_tokens == 0
    follow_up = history + [{"role": "assistant", "content": first.text},
                           {"role": "user", "content": "Name another one."}]
    second = engine.chat(follow_up, GREEDY).wait()
    # Everything up to the first reply is reused: only the new turn is evaluated.
    assert second.stats.cached_tokens >= first.stats.prompt_tokens
    evaluated = second.stats.prompt_tokens - second.stats.cached_tokens
    assert evaluated < 40 < first.stats.prompt_tokens

    engine.reset().wait()
    fresh = engine.chat(follow_up, GREEDY).wait()
    assert fresh.stats.cached_tokens == 0 and fresh.stats.prompt_tokens == second.stats.prompt_tokens


def test_sampling_options_are_honoured(engine):
    # robust up to "Paris", which it reaches only after 3 tokens: so no end of text within 3 tokens, anywhere
    run = engine.call(lambda llm: robust_capital(llm, GREEDY.max_tokens)).wait(60)
    assert b"Paris" not in b"".join(run.pieces[:3])
    capped = engine.chat(QUESTION, SamplingOptions(temperature=0.0, max_tokens=3)).wait()
    assert capped.stats.completion_tokens == 3 and capped.stats.finish_reason == "length"
    stopped = engine.chat(QUESTION, SamplingOptions(temperature=0.0, stop=["Paris"])).wait()
    assert "Paris" not in stopped.text and stopped.stats.finish_reason == "stop"
    story = [{"role": "user", "content": "Tell me a story."}]
    opts = SamplingOptions(temperature=1.0, seed=1234, max_tokens=24)
    # Each sampled run starts from an empty cache, so both evaluate the prompt the same way: the same seed must
    # then give the same text (a cached prompt would change the logits slightly, and with them, rarely, a draw).
    engine.reset().wait()
    a = engine.chat(story, opts).wait()
    engine.reset().wait()
    b = engine.chat(story, opts).wait()
    assert a.text == b.text
    other = engine.chat(story, opts.model_copy(update={"seed": 99})).wait()
    assert other.text != a.text


def test_raw_completion(engine):
    result = engine.complete("The capital of France is", GREEDY).wait()
    assert result.stats.completion_tokens > 0 and result.text


def test_engine_survives_a_failed_job(engine, tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelLoadError, match="could not load bogus.gguf"):
        engine.chat(QUESTION, GREEDY, model=ModelSpec("bogus", bogus)).wait(30)
    with pytest.raises(EngineError, match="No model is loaded"):
        engine.chat(QUESTION, GREEDY).wait(30)
    spec = ModelSpec("starter", starter_path(), ContextParams(n_ctx=2048))
    assert "Paris" in engine.chat(QUESTION, GREEDY, model=spec).wait(60).text
    engine.call(lambda llm: robust_capital(llm, GREEDY.max_tokens)).wait(60)


def test_prompt_longer_than_context_is_a_clear_error():
    with EngineService() as eng:
        spec = ModelSpec("small-ctx", starter_path(), ContextParams(n_ctx=256))
        long = [{"role": "user", "content": "word " * 400}]
        handle = eng.chat(long, GREEDY, model=spec)
        events = list(handle)
        assert isinstance(events[-1], Failed)
        assert "longer than the 256-token context" in str(events[-1].error)


def test_cancelled_load():
    with EngineService() as eng:
        gate = threading.Event()
        eng.call(lambda _m: gate.wait(10))  # hold the worker so the cancel lands before the load starts
        handle = eng.load(ModelSpec("starter", starter_path()))
        handle.cancel()
        gate.set()
        with pytest.raises(LoadCancelled):
            handle.wait(30)
        assert eng.loaded is None


def test_a_second_model_slot_streams_beside_the_first_and_is_freed_when_idle():
    """The router's large tier is a slot of the same engine: both models answer at once on the one worker thread,
    and the large one is freed after its keep-alive while the chat model stays."""
    eng = EngineService(name="two-slots").start()
    try:
        small = ModelSpec("small", starter_path(), ContextParams(n_ctx=1024))
        large = ModelSpec("large", starter_path(), ContextParams(n_ctx=1024))
        eng.load(small).wait(60)
        a = eng.chat(QUESTION, GREEDY)
        b = eng.chat(QUESTION, GREEDY, model=large, slot="large")
        ra, rb = a.wait(120), b.wait(120)
        assert "Paris" in ra.text and "Paris" in rb.text
        assert [m["slot"] for m in eng.models()] == ["chat", "large"]
        assert {j["model"] for j in eng.snapshot()["running"]} <= {"chat", "large"}
        with pytest.raises(EngineError, match="Unknown model slot"):
            eng.chat(QUESTION, GREEDY, slot="elsewhere")
        eng.set_keep_alive("large", 0.2)
        deadline = time.monotonic() + 10
        while eng.loaded_in("large") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert eng.loaded_in("large") is None and eng.loaded.name == "small"
        again = eng.chat(QUESTION, GREEDY, model=large, slot="large").wait(120)  # loaded again on demand
        assert again.text == rb.text
    finally:
        eng.shutdown()
