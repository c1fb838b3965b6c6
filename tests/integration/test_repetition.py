"""A reply that turns into a verbatim loop ends with finish reason ``repetition``, on the real starter model.

The prompt is itself a long verbatim repetition, so its greedy continuation repeats it too. The test first checks
that on this machine every greedy step it relies on wins by a wide margin (:func:`tests.greedy.assert_robust`), so
the loop, and where the detector cuts it, cannot differ on another CPU.
"""

import pytest

from inference.engine import EngineService, ModelSpec
from inference.llama_model import ContextParams
from inference.repetition import MIN_TOKENS, first_loop
from inference.sampling import SamplingOptions
from tests.greedy import assert_robust, greedy_run
from tests.helpers import starter_path

pytestmark = pytest.mark.integration

PROMPT = "The cat sat on the mat.\n" * 30  # its greedy continuation wins every step by > 4 logits here
SPACED = " ".join(["The cat sat on the mat."] * 30)  # no DRY sequence breaker ("\n") inside the repeats
STEPS = MIN_TOKENS + 16  # past the point where the loop is cut


@pytest.fixture(scope="module")
def engine():
    eng = EngineService(name="repetition-test").start()
    eng.load(ModelSpec("starter", starter_path(), ContextParams(n_ctx=1024))).wait(120)
    yield eng
    eng.shutdown()


def test_a_looping_reply_ends_with_repetition_where_the_loop_is_proven(engine):
    def reference(model):
        return greedy_run(model, model.tokenize(PROMPT, add_special=True, parse_special=False), STEPS)

    run = engine.call(reference).wait(120)
    cut = first_loop(run.tokens)
    assert cut is not None and cut < STEPS, f"the continuation is not a verbatim loop: {run}"
    expected = b"".join(run.pieces[:cut + 1]).decode("utf-8", errors="replace")
    assert_robust(run, until=expected)  # every step up to the cut: the same tokens and the same cut on any CPU

    looped = engine.complete(PROMPT, SamplingOptions(temperature=0.0, max_tokens=400)).wait(120)
    assert looped.stats.finish_reason == "repetition"
    assert looped.stats.completion_tokens == cut + 1
    assert looped.text == expected  # the text streamed up to the cut is kept, nothing more

    free = engine.complete(PROMPT, SamplingOptions(temperature=0.0, max_tokens=STEPS, stop_loops=False)).wait(120)
    assert free.stats.finish_reason == "length" and free.stats.completion_tokens == STEPS


def test_dry_keeps_the_reply_from_repeating_the_prompt_verbatim(engine):
    options = SamplingOptions(temperature=0.0, max_tokens=STEPS, dry_multiplier=0.8, stop_loops=False)
    reply = engine.complete(SPACED, options).wait(120)
    tokens = engine.call(lambda m: m.tokenize(reply.text, add_special=False, parse_special=False)).wait(10)
    assert first_loop(tokens) is None, reply.text


def test_the_loop_benchmark_finds_non_looping_replies_unchanged():
    from app.bench.loops import bench_loops, format_loops
    from app.core import Ember

    core = Ember.open()
    try:
        r = bench_loops(core, prompts=["What is 12 times 7?", "Repeat after me: " + PROMPT], tokens=MIN_TOKENS + 8,
                        command="ember bench loops --tokens 72")
    finally:
        core.close()
    assert r["prompts"] == 2 and set(r["modes"]) == {"temperature_0", "defaults"}
    for m in r["modes"].values():  # both runs of a prompt evaluate the same batches: only the cut may differ
        assert m["replies"] == 2 and m["as_expected"] == 2
        assert m["not_looping_identical"] == m["not_looping"]
        assert m["after_repetition"] == m["replies"] - m["not_looping"]
    assert r["identical"] and "reproduce: ember bench loops --tokens 72" in format_loops(r)
