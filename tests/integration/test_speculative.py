"""Speculative decoding on the real starter model: lossless at temperature 0, consistent caches, stop, stats.

The target is an F16 requantisation of the Q4_1 starter (same vocabulary), the draft is the starter itself. As in
llama.cpp's own tests, losslessness is checked where it can be nearly exact: batched and single-token evaluation of
an F16 model differ by about 0.07 in a logit (against about 1.5 for the quantised starter, whose 8-bit activations
magnify reordered sums), and greedy speculative output is compared with plain greedy output tie-aware with that
measured noise as the tolerance (``tests.greedy.batch_noise``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.draft_control import DraftController
from inference.draft_compat import DraftIncompatibleError
from inference.drafters import LookupDrafter, ModelDrafter, logits_row
from inference.engine import EngineService, ModelSpec
from inference.generate import generate
from inference.grammar import json_grammar
from inference.kv_state import StateCache
from inference.llama_model import ContextParams, LlamaModel
from inference.requantize import requantized_copy
from inference.sampling import SamplingOptions
from inference.spec_runtime import SpeculativeConfig
from inference.speculative import generate_speculative
from tests.greedy import GreedyRun, batch_noise, assert_grammar_greedy_agree, assert_greedy_agree, assert_same_greedy, \
    greedy_run
from tests.helpers import starter_path

PARAMS = ContextParams(n_ctx=1024, n_batch=256, n_threads=2)
CODE = ("def area(width, height):\n    result = width * height\n    return result\n\n"
        "def perimeter(width, height):\n    result = 2 * (width + height)\n    return result\n")
COPY_PROMPT = ("<|im_start|>user\nCopy this code exactly, then stop:\n" + CODE + "<|im_end|>\n"
               "<|im_start|>assistant\n```python\n")
FREE_PROMPT = "<|im_start|>user\nWrite a short poem about the sea.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def target_path(tmp_path_factory):
    return requantized_copy(starter_path(), tmp_path_factory.mktemp("rq"), "f16")


@pytest.fixture(scope="module")
def target(target_path):
    model = LlamaModel(target_path, PARAMS)
    yield model
    model.close()


@pytest.fixture(scope="module")
def draft_model():
    model = LlamaModel(starter_path(), PARAMS)
    yield model
    model.close()


def speculative_tokens(model, drafter, prompt, options, **kw):
    out: list[int] = []
    model.clear()
    stats = generate_speculative(model, drafter, prompt, options, should_stop=lambda: False,
                                 on_text=lambda t: None, on_token=out.append, **kw)
    return out, stats


def assert_lossless(model: LlamaModel, plain: GreedyRun, spec: list[int]) -> None:
    """Speculative greedy output is plain greedy output, up to a near-tie (the EOG token it releases aside)."""
    assert_same_greedy(plain, spec[:-1] if spec and model.is_eog(spec[-1]) else spec)


def assert_cache_consistent(model: LlamaModel, history: list[int]) -> None:
    """The cache holds a prefix of the accepted text and nothing past it, and logits after it match a fresh
    evaluation (stale cells would change them)."""
    assert model.tokens == history[:len(model.tokens)]
    import llama_cpp
    mem = llama_cpp.llama_get_memory(model.ctx)
    assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == len(model.tokens) - 1
    nxt = history[len(model.tokens)] if len(history) > len(model.tokens) else history[-1]
    model.decode([nxt])
    cached = logits_row(model, -1).copy()
    keep = list(model.tokens)
    model.clear()
    model.ingest_prompt(keep)
    fresh = logits_row(model, -1).copy()
    diff = float(np.abs(cached - fresh).max())
    # batched verification leaves differences within the measured noise; a stale cell shifts logits by ~10
    noise = batch_noise(model)
    assert fresh[int(np.argmax(cached))] > fresh.max() - noise.tie, noise  # the same next token, up to a near-tie
    assert diff <= 2 * noise.tie, f"cached and fresh logits differ by {diff:.3f}; {noise}"


GREEDY = SamplingOptions(temperature=0.0, repeat_penalty=1.0, max_tokens=48, stop_loops=False)  # as plain greedy_run


def test_lookup_greedy_equals_plain_greedy_up_to_near_ties(target):
    prompt = target.tokenize(COPY_PROMPT, add_special=True)
    plain = greedy_run(target, prompt, GREEDY.max_tokens)
    spec, stats = speculative_tokens(target, LookupDrafter(), prompt, GREEDY,
                                     controller=DraftController(max_draft=6, adaptive=False))
    assert_lossless(target, plain, spec)
    assert stats.speculative == "lookup" and stats.drafted > 0 and stats.accepted > 0
    assert 0 < stats.acceptance_rate <= 1 and stats.verify_ms > 0 and stats.verify_calls > 0


def test_model_draft_greedy_equals_plain_greedy_and_caches_stay_consistent(target, draft_model):
    prompt = target.tokenize(FREE_PROMPT, add_special=True)
    plain = greedy_run(target, prompt, GREEDY.max_tokens)
    drafter = ModelDrafter(draft_model, p_min=0.0)
    draft_model.clear()
    spec, stats = speculative_tokens(target, drafter, prompt, GREEDY,
                                     controller=DraftController(max_draft=4, adaptive=False))
    assert_lossless(target, plain, spec)
    assert stats.speculative == "draft" and stats.drafted >= 10
    assert stats.acceptance_rate >= 0.8  # Q4_1 drafting for its own F16 requantisation
    history = prompt + spec
    assert_cache_consistent(target, history)
    assert_cache_consistent(draft_model, history)


class WrongEveryThirdDrafter(ModelDrafter):
    """Proposes the draft model's tokens but spoils every third one, so the target rejects it."""

    def propose(self, context, k, options, rng):
        draft = super().propose(context, k, options, rng)
        for i in range(2, len(draft.tokens), 3):
            draft.tokens[i] = (draft.tokens[i] + 1) % self.model.n_vocab
        return draft


def test_rejections_roll_back_both_caches(target, draft_model):
    prompt = target.tokenize(FREE_PROMPT, add_special=True)
    plain = greedy_run(target, prompt, GREEDY.max_tokens)
    draft_model.clear()
    spec, stats = speculative_tokens(target, WrongEveryThirdDrafter(draft_model, p_min=0.0), prompt, GREEDY,
                                     controller=DraftController(max_draft=6, adaptive=False))
    assert stats.drafted > stats.accepted + 5  # many rejections
    assert_lossless(target, plain, spec)
    history = prompt + spec
    assert_cache_consistent(target, history)
    assert_cache_consistent(draft_model, history)


def test_sampling_keeps_caches_consistent(target, draft_model):
    prompt = target.tokenize(FREE_PROMPT, add_special=True)
    options = SamplingOptions(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=3, max_tokens=40)
    draft_model.clear()
    spec, stats = speculative_tokens(target, ModelDrafter(draft_model, p_min=0.0), prompt, options,
                                     controller=DraftController(max_draft=6, adaptive=False))
    assert stats.drafted > 0 and len(spec) > 0
    assert_cache_consistent(target, prompt + spec)


def test_sampling_with_a_seed_is_reproducible(target):
    prompt = target.tokenize(COPY_PROMPT, add_special=True)
    options = SamplingOptions(temperature=0.8, seed=11, max_tokens=24, repeat_penalty=1.1)
    a, _ = speculative_tokens(target, LookupDrafter(), prompt, options,
                              controller=DraftController(max_draft=4, adaptive=False))
    b, _ = speculative_tokens(target, LookupDrafter(), prompt, options,
                              controller=DraftController(max_draft=4, adaptive=False))
    assert a == b and len(a) > 0


def test_stop_flag_is_honoured_within_a_token(target):
    prompt = target.tokenize(COPY_PROMPT, add_special=True)
    released: list[int] = []
    stop = [False]

    def on_token(tok: int) -> None:
        released.append(tok)
        if len(released) == 5:
            stop[0] = True

    target.clear()
    stats = generate_speculative(target, LookupDrafter(), prompt, GREEDY, should_stop=lambda: stop[0],
                                 on_text=lambda t: None, on_token=on_token,
                                 controller=DraftController(max_draft=8, adaptive=False))
    assert stats.finish_reason == "cancelled"
    assert len(released) == 5  # nothing released after the flag, even from an accepted draft


def test_engine_runs_lookup_and_refuses_an_incompatible_draft(tmp_path, target_path):
    from dataclasses import replace as dc_replace

    import inference.spec_runtime as rt

    engine = EngineService(name="spec-test").start()
    try:
        spec = ModelSpec("starter", starter_path(), PARAMS, speculative=SpeculativeConfig("lookup"))
        result = engine.complete(COPY_PROMPT, GREEDY, model=spec).wait(60)
        assert result.stats.speculative == "lookup" and result.stats.as_dict()["drafted"] >= 0
        # swapping the drafter keeps the target loaded
        bad = ModelSpec("starter", starter_path(), PARAMS,
                        speculative=SpeculativeConfig("draft", draft_path=target_path, draft_name="fake-gemma"))
        real_read = rt.read_vocab
        rt.read_vocab = lambda path, name=None: (dc_replace(real_read(path, name=name), vocab_type=1)
                                                 if name == "fake-gemma" else real_read(path, name=name))
        try:
            with pytest.raises(DraftIncompatibleError, match="fake-gemma cannot draft for .*vocabulary type"):
                engine.complete(COPY_PROMPT, GREEDY, model=bad).wait(60)
        finally:
            rt.read_vocab = real_read
        plain = engine.complete(COPY_PROMPT, GREEDY, model=ModelSpec("starter", starter_path(), PARAMS)).wait(60)
        assert plain.stats.speculative is None and "drafted" not in plain.stats.as_dict()
    finally:
        engine.shutdown()


# -- speculation as part of the engine's batched loop ------------------------------------------------------------

SNIPPETS = [CODE,
            "def greet(name):\n    message = 'Hello, ' + name\n    return message\n\nprint(greet('Ann'))\n",
            "for i in range(10):\n    if i % 2 == 0:\n        print(i, 'is even')\n    else:\n        print(i, 'is odd')\n",
            "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n"]
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
JSON_PROMPT = ("<|im_start|>user\nReply with JSON like {\"name\": \"Bob\", \"age\": 40} for Ann, aged 31."
               "<|im_end|>\n<|im_start|>assistant\n")


def copy_prompt(code: str) -> str:
    return ("<|im_start|>user\nCopy this code exactly, then stop:\n" + code + "<|im_end|>\n"
            "<|im_start|>assistant\n```python\n")


@pytest.fixture(scope="module")
def spec_engine():
    eng = EngineService(name="spec-batch", parallel=4, prefill_chunk=64).start()
    yield eng
    eng.shutdown()


@pytest.fixture(scope="module")
def lookup_spec(target_path):
    return ModelSpec("f16", target_path, PARAMS, speculative=SpeculativeConfig("lookup", adaptive=False, max_draft=4))


@pytest.fixture(scope="module")
def plain_spec(target_path):
    return ModelSpec("f16", target_path, PARAMS)


def agree_on_engine(engine: EngineService, prompt: str, a: str, b: str) -> None:
    engine.call(lambda llm: assert_greedy_agree(llm, llm.tokenize(prompt, add_special=True), a, b)).wait(120)


def test_speculative_sequences_share_the_batch_and_stay_lossless(spec_engine, lookup_spec, plain_spec):
    prompts = [copy_prompt(c) for c in SNIPPETS]
    results = [h.wait(180) for h in [spec_engine.complete(p, GREEDY, model=lookup_spec) for p in prompts]]
    # every reply drafted, and their verify batches went into the same decodes
    assert all(r.stats.speculative == "lookup" and r.stats.accepted > 0 for r in results)
    assert spec_engine.snapshot()["most_generating"] >= 2
    for prompt, result in zip(prompts, results):
        alone = spec_engine.complete(prompt, GREEDY, model=plain_spec).wait(120)
        agree_on_engine(spec_engine, prompt, result.text, alone.text)


def test_speculation_follows_a_grammar_and_keeps_the_greedy_output(target):
    grammar = json_grammar(PERSON)
    options = GREEDY.model_copy(update={"max_tokens": 40})
    prompt = target.tokenize(JSON_PROMPT, add_special=True)
    plain: list[int] = []
    target.clear()
    generate(target, prompt, options, should_stop=lambda: False, on_text=lambda t: None, grammar=grammar,
             on_token=plain.append)
    spec, stats = speculative_tokens(target, LookupDrafter(), prompt, options, grammar=grammar,
                                     controller=DraftController(max_draft=4, adaptive=False))
    assert stats.speculative == "lookup" and stats.drafted > 0 and stats.accepted > 0
    strip = lambda t: t[:-1] if t and target.is_eog(t[-1]) else t  # noqa: E731
    assert_grammar_greedy_agree(target, prompt, grammar, strip(spec), strip(plain))
    if stats.finish_reason == "stop":
        text = b"".join(target.piece(t) for t in strip(spec)).decode()
        assert set(json.loads(text)) >= {"name", "age"}


def test_the_engine_drafts_under_a_grammar(spec_engine, lookup_spec):
    result = spec_engine.complete(JSON_PROMPT, GREEDY, model=lookup_spec, grammar=json_grammar(PERSON)).wait(120)
    assert result.stats.speculative == "lookup" and result.stats.drafted > 0
    if result.stats.finish_reason == "stop":
        assert set(json.loads(result.text)) >= {"name", "age"}


def test_sampled_speculation_under_a_grammar_writes_what_it_allows(spec_engine, lookup_spec):
    options = SamplingOptions(temperature=0.9, seed=5, max_tokens=60, stop_loops=False)
    result = spec_engine.complete(JSON_PROMPT, options, model=lookup_spec, grammar=json_grammar(PERSON)).wait(120)
    assert result.stats.speculative == "lookup" and result.stats.drafted > 0
    if result.stats.finish_reason == "stop":
        assert set(json.loads(result.text)) >= {"name", "age"}
    else:  # cut at max_tokens: still a prefix of an object of that shape
        assert result.text.lstrip().startswith("{")


def test_the_grammar_moves_forbidden_mass_to_what_it_allows(target):
    """Under a grammar the speculative path samples what the plain path does: the chain's p, with the mass of
    forbidden tokens given to the chain over the grammar-masked logits."""
    from inference.grammar import GrammarDists
    from inference.spec_sampling import target_dist

    prompt = target.tokenize(JSON_PROMPT, add_special=True)
    target.clear()
    target.ingest_prompt(prompt + target.tokenize('{"name": "', add_special=False))
    row = logits_row(target, -1).copy()
    options = SamplingOptions(temperature=1.0, top_k=40, top_p=1.0, min_p=0.0)
    gate = GrammarDists('root ::= "A" [a-z]*', target)  # allows only tokens that start with A
    try:
        p = target_dist(row, (), options)
        ok = gate.allowed(p.tokens.astype(np.int32))
        assert not ok.all()  # some of p's mass is forbidden, so the mixture is exercised
        c = gate.constrain(p, row, (), options)
        assert abs(c.probs.sum() - 1) < 1e-9 and gate.allowed(c.tokens.astype(np.int32)).all()
        forbidden = float(p.probs[~ok].sum())
        again = target_dist(gate.masked(row), (), options)
        for t in c.tokens[:10]:
            assert abs(c.prob(int(t)) - ((p.prob(int(t)) if t in p.tokens else 0.0)
                                         + forbidden * again.prob(int(t)))) < 1e-9
    finally:
        gate.close()


def test_speculation_restores_a_saved_state(target):
    states = StateCache(None, min_tokens=16)
    prompt = target.tokenize(COPY_PROMPT, add_special=True)
    target.clear()
    target.ingest_prompt(prompt)
    states.put(target.model_key, list(target.tokens), target.save_state())
    plain = greedy_run(target, prompt, GREEDY.max_tokens)
    spec, stats = speculative_tokens(target, LookupDrafter(), prompt, GREEDY, states=states,
                                     controller=DraftController(max_draft=6, adaptive=False))
    assert stats.cached_tokens >= len(prompt) - 1  # from the saved state, not evaluated again
    assert_lossless(target, plain, spec)


def test_a_speculative_reply_longer_than_the_context_shifts_instead_of_stopping():
    """Past the context's end the speculative loop shifts the older half out, as the plain loop does, and goes on
    drafting: a grammar that never lets the reply end makes it run to ``max_tokens``, whatever this CPU's numerics."""
    model = LlamaModel(starter_path(), ContextParams(n_ctx=256, n_batch=64, n_threads=2))
    try:
        grammar = 'root ::= item root\nitem ::= "red " | "green " | "blue "\n'
        prompt = model.tokenize("<|im_start|>user\nList colours.<|im_end|>\n<|im_start|>assistant\n",
                                add_special=True)
        out: list[int] = []
        stats = generate_speculative(model, LookupDrafter(), prompt, GREEDY.model_copy(update={"max_tokens": 400}),
                                     should_stop=lambda: False, on_text=lambda t: None, on_token=out.append,
                                     grammar=grammar, controller=DraftController(max_draft=4, adaptive=False))
        assert stats.completion_tokens == 400 and stats.finish_reason == "length"
        assert stats.context_shifts and stats.context_shifts >= 1
        assert stats.drafted > 0 and stats.accepted > 0
        text = b"".join(model.piece(t) for t in out).decode()
        words = text.split(" ")
        assert len(words) > 100 and set(words[:-1]) <= {"red", "green", "blue"}, text[:200]  # the last may be cut
        assert model.tokens[:4] == prompt[:4] and len(model.tokens) < model.n_ctx  # kept prefix, room left
        import llama_cpp
        assert llama_cpp.llama_memory_seq_pos_max(llama_cpp.llama_get_memory(model.ctx), 0) == len(model.tokens) - 1
    finally:
        model.close()
