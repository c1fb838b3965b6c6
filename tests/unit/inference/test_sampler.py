"""The sampler chain: llama.cpp's order, and DRY in it only when its multiplier is set."""

import ctypes

import llama_cpp
import numpy as np
import pytest

from inference import llama_log
from inference.sampler import DRY_SEQUENCE_BREAKERS, Sampler
from inference.sampling import SamplingOptions
from tests.helpers import starter_path


@pytest.fixture(scope="module")
def vocab():
    """The starter's vocabulary (``vocab_only``: no weights are loaded)."""
    llama_log.install()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(starter_path()).encode(), params)
    assert model
    yield llama_cpp.llama_model_get_vocab(model)
    llama_cpp.llama_model_free(model)


def chain_names(sampler: Sampler) -> list[str]:
    chain = sampler._chain
    return [llama_cpp.llama_sampler_name(llama_cpp.llama_sampler_chain_get(chain, i)).decode()
            for i in range(llama_cpp.llama_sampler_chain_n(chain))]


def pick(sampler: Sampler, logits: np.ndarray) -> int:
    """What the chain selects from ``logits`` (as :meth:`Sampler.sample` does from a context's row)."""
    n = len(logits)
    data = (llama_cpp.llama_token_data * n)()
    for i, v in enumerate(logits):
        data[i].id, data[i].logit, data[i].p = i, float(v), 0.0
    arr = llama_cpp.llama_token_data_array(data, n, -1, False)
    llama_cpp.llama_sampler_apply(sampler._chain, ctypes.byref(arr))
    return int(arr.data[arr.selected].id)


def test_dry_sits_after_the_penalties_and_before_top_k(vocab):
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    opts = SamplingOptions(repeat_penalty=1.1, dry_multiplier=0.8)
    with Sampler(opts, n_vocab=n_vocab, vocab=vocab) as s:
        assert chain_names(s)[:3] == ["penalties", "dry", "top-k"]
        assert s.uses_history and s.history_len >= 64
    with Sampler(SamplingOptions(temperature=0, dry_multiplier=0.8), n_vocab=n_vocab, vocab=vocab) as s:
        assert chain_names(s) == ["dry", "greedy"]


def test_at_zero_the_chain_is_what_it_was_without_dry(vocab):
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    with Sampler(SamplingOptions(), n_vocab=n_vocab, vocab=vocab) as s:
        assert "dry" not in chain_names(s)
        assert not s.uses_history
    with Sampler(SamplingOptions(temperature=0), n_vocab=n_vocab) as s:  # and needs no vocabulary then
        assert chain_names(s) == ["greedy"]
    with pytest.raises(ValueError, match="vocab"):
        Sampler(SamplingOptions(dry_multiplier=0.5), n_vocab=n_vocab)


def test_dry_penalises_the_token_that_would_extend_a_repeat(vocab):
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

    def text(t: int) -> str:
        return llama_cpp.llama_vocab_get_text(vocab, t).decode("utf-8", "replace")

    a, b, c, other = [t for t in range(1000, 1100) if not any(br in text(t) for br in DRY_SEQUENCE_BREAKERS)][:4]
    logits = np.zeros(n_vocab, dtype=np.float32)
    logits[c], logits[other] = 5.0, 4.9  # c would continue "a b c" once more
    history = [a, b, c, a, b, c, a, b]
    for mult, expected in ((0.0, c), (0.8, other)):
        opts = SamplingOptions(temperature=0.0, dry_multiplier=mult)
        with Sampler(opts, n_vocab=n_vocab, vocab=vocab) as s:
            s.prime(history)
            assert pick(s, logits) == expected, mult


def test_ignore_eos_never_picks_an_end_of_generation_token(vocab):
    from inference.sampler import end_of_generation_tokens

    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    eog = end_of_generation_tokens(vocab, n_vocab)
    assert llama_cpp.llama_vocab_eos(vocab) in eog
    logits = np.zeros(n_vocab, dtype=np.float32)
    logits[eog] = 50.0  # the end is by far the likeliest token
    logits[7] = 10.0
    with Sampler(SamplingOptions(temperature=0, ignore_eos=True), n_vocab=n_vocab, vocab=vocab) as s:
        assert chain_names(s) == ["logit-bias", "greedy"]
        assert pick(s, logits) == 7
    with Sampler(SamplingOptions(temperature=0), n_vocab=n_vocab, vocab=vocab) as s:
        assert pick(s, logits) in eog


def test_plain_greedy_picks_what_llama_cpps_greedy_sampler_picks_on_every_row_and_at_ties():
    """The greedy fast path (an argmax over the logits row) against llama.cpp's own greedy chain: the same token
    on every row of a batched decode, and the first of two tied maxima, as llama.cpp's sampler takes."""
    from inference.llama_model import ContextParams, LlamaModel

    model = LlamaModel(starter_path(), ContextParams(n_ctx=256, n_batch=64, n_threads=2))
    try:
        prompt = model.tokenize("The capital of France is Paris. The capital of Italy is", add_special=True)
        model.decode(prompt, logits=[True] * len(prompt))
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        with Sampler(SamplingOptions(temperature=0), n_vocab=model.n_vocab) as fast:
            assert fast._argmax
            for row in range(len(prompt)):
                assert fast.sample(model.ctx, row) == llama_cpp.llama_sampler_sample(chain, model.ctx, row)
            tied = np.zeros(model.n_vocab, dtype=np.float32)
            tied[[7, 4242, 99]] = 5.0
            model.restore_next_logits(tied, row=len(prompt) - 1)
            assert fast.sample(model.ctx, len(prompt) - 1) == 7
            assert llama_cpp.llama_sampler_sample(chain, model.ctx, len(prompt) - 1) == 7
        llama_cpp.llama_sampler_free(chain)
        with Sampler(SamplingOptions(temperature=0, repeat_penalty=1.1), n_vocab=model.n_vocab) as chained:
            assert not chained._argmax  # penalties need the chain
    finally:
        model.close()
