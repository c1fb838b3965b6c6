"""Long conversations, context shifts, conversation switching with saved KV states, and loads that cannot fit."""

import time

import pytest

from inference import hardware
from inference.engine import EngineService, ModelSpec
from inference.errors import ModelLoadError
from inference.kv_state import StateCache
from inference.llama_model import ContextParams
from inference.sampling import SamplingOptions
from tests.greedy import CAPITAL, assert_greedy_agree, chat_tokens, robust_capital
from tests.helpers import starter_path

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
TOPICS = ["volcanoes", "the moon", "bread", "trains", "the ocean", "music", "chess", "rain", "bees", "castles",
          "rivers", "stars", "tea", "bridges", "owls", "glaciers", "maps", "clocks"]


def spec(n_ctx: int) -> ModelSpec:
    return ModelSpec("starter", starter_path(), ContextParams(n_ctx=n_ctx))


def test_conversation_three_times_the_context_never_errors_and_stays_coherent():
    opts = SamplingOptions(temperature=0.0, max_tokens=48)
    msgs = [SYSTEM]
    with EngineService() as eng:
        eng.load(spec(256)).wait(60)
        trimmed_turns = []
        for topic in TOPICS:
            msgs.append({"role": "user", "content": f"Tell me two facts about {topic}."})
            result = eng.chat(msgs, opts).wait(120)
            assert result.text and result.stats.finish_reason in ("stop", "length", "repetition")
            msgs.append({"role": "assistant", "content": result.text})
            if result.stats.trimmed_messages:
                trimmed_turns.append(result.stats)
        text = " ".join(m["content"] for m in msgs)
        length = eng.call(lambda llm: len(llm.tokenize(text, add_special=False))).wait(30)
        assert length > 3 * 256  # the conversation is over three contexts long
        assert trimmed_turns, "the oldest turns must have been dropped"
        # Dropping the oldest turns shifts the cache: the kept turns are not evaluated again.
        assert all(s.cached_tokens > s.prompt_tokens // 2 for s in trimmed_turns)
        # After all those shifts a further turn still answers. (Its topic is not checked: the history is the
        # model's own greedy text, which differs between CPUs, and so does what it says next.)
        msgs.append({"role": "user", "content": "Tell me one more fact about them."})
        answer = eng.chat(msgs, opts).wait(60)
        assert answer.text.strip()


def test_reply_longer_than_the_context_shifts_instead_of_stopping():
    with EngineService() as eng:
        essay = [{"role": "user", "content": "Write a long essay about the history of Rome, with many details."}]
        # ignore_eos and no loop stop: the reply runs to 400 tokens whatever this CPU's numerics make it say
        options = SamplingOptions(temperature=0.7, seed=2, max_tokens=400, ignore_eos=True, stop_loops=False)
        result = eng.chat(essay, options, model=spec(256)).wait(120)
        assert result.stats.completion_tokens == 400 and result.stats.finish_reason == "length"
        assert result.stats.context_shifts >= 1


def _history() -> list[dict[str, str]]:
    notes = " ".join(f"Note {i}: the {t} chapter needs review before Friday." for i, t in enumerate(TOPICS * 6))
    return [SYSTEM, {"role": "user", "content": f"Here are my notes. {notes} Summarise them in one sentence."}]


def test_switching_back_restores_the_saved_state(tmp_path):
    opts = SamplingOptions(temperature=0.0, max_tokens=24)
    a = _history()
    other = [SYSTEM, {"role": "user", "content": "What is the capital of Italy?"}]
    with EngineService() as direct:  # reference: conversation A continued without switching
        first = direct.chat(a, opts, model=spec(2048)).wait(120)
        a_next = a + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "Shorter, please."}]
        expected = direct.chat(a_next, opts).wait(120)
    assert first.stats.prompt_tokens > 1000

    with EngineService(states=StateCache(tmp_path, min_tokens=64)) as eng:
        again = eng.chat(a, opts, model=spec(2048)).wait(120)
        eng.chat(other, opts).wait(60)  # switching away saves A's state
        back = eng.chat(a_next, opts).wait(120)
        # A's history came back from the saved state, not from re-evaluation, and gives the same reply (up to a
        # near-tie: the restored cache ends in a token evaluated on its own, the direct one in a batch).
        assert back.stats.cached_tokens >= first.stats.prompt_tokens
        eng.call(lambda llm: assert_greedy_agree(llm, chat_tokens(llm, a), again.text, first.text)).wait(60)
        eng.call(lambda llm: assert_greedy_agree(llm, chat_tokens(llm, a_next), back.text, expected.text)).wait(60)

    with EngineService() as eng:  # no saved states: switching back re-evaluates the history
        eng.chat(a, opts, model=spec(2048)).wait(120)
        eng.chat(other, opts).wait(60)
        assert eng.chat(a_next, opts).wait(120).stats.cached_tokens < 50


def test_saved_states_on_disk_serve_a_new_process(tmp_path):
    opts = SamplingOptions(temperature=0.0, max_tokens=8)
    a = _history()
    with EngineService(states=StateCache(tmp_path, ram_budget=0, min_tokens=64)) as eng:
        first = eng.chat(a, opts, model=spec(2048)).wait(120)
        eng.chat([SYSTEM, {"role": "user", "content": "Hi"}], opts).wait(60)
    assert list(tmp_path.glob("*.kvstate"))
    with EngineService(states=StateCache(tmp_path, ram_budget=0, min_tokens=64)) as eng:
        again = eng.chat(a, opts, model=spec(2048)).wait(120)
    # Everything but the last prompt token (evaluated again for fresh logits) came from the file. The text is not
    # compared: that last token is now evaluated alone rather than in a batch, which can flip a near-tie (FACTS).
    assert again.stats.cached_tokens == first.stats.prompt_tokens - 1
    assert again.text


def test_a_load_that_cannot_fit_is_refused_clearly_and_the_engine_keeps_its_model(monkeypatch):
    question = CAPITAL
    opts = SamplingOptions(temperature=0.0, max_tokens=16)
    with EngineService() as eng:
        eng.load(spec(2048)).wait(60)
        monkeypatch.setattr(hardware, "memory", lambda: hardware.Memory(total=1 << 30, available=8 << 20))
        bigger = ModelSpec("starter-32k", starter_path(), ContextParams(n_ctx=8192))
        with pytest.raises(ModelLoadError, match=r"needs about .* [MG]iB at 8192 tokens .* smaller quantisation"):
            eng.load(bigger).wait(60)
        monkeypatch.undo()
        assert eng.loaded is not None and eng.loaded.name == "starter"
        assert "Paris" in eng.chat(question, opts).wait(60).text
        eng.call(lambda llm: robust_capital(llm, opts.max_tokens)).wait(60)


def test_a_conversation_set_aside_is_saved_while_the_engine_is_idle():
    """Switching a slot to another prompt parks the old conversation (no save on the new reply's path); the idle
    worker saves it without waiting for another job."""
    opts = SamplingOptions(temperature=0.0, max_tokens=8)
    states = StateCache(None, min_tokens=64)
    with EngineService(states=states, parallel=1) as eng:
        eng.chat(_history(), opts, model=spec(2048)).wait(120)
        eng.chat([SYSTEM, {"role": "user", "content": "Hi"}], opts).wait(60)
        deadline = time.monotonic() + 10
        while not len(states) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(states) == 1, "the parked conversation was not saved while the engine was idle"
        assert eng.call(lambda llm: llm.parked).wait(10) is False
