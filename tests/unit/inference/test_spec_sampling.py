"""The numpy sampler chain matches llama.cpp's, and speculative sampling keeps the target's distribution."""

import ctypes

import llama_cpp
import numpy as np
import pytest

from inference.sampling import SamplingOptions
from inference.spec_sampling import Dist, accept_or_resample, greedy_token, target_dist


def llama_chain_probs(logits: np.ndarray, history: list[int], o: SamplingOptions) -> dict[int, float]:
    """What llama.cpp's own samplers (the chain :class:`inference.sampler.Sampler` builds, minus the draw) keep."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = lambda s: llama_cpp.llama_sampler_chain_add(chain, s)  # noqa: E731
    n = len(logits)
    if o.repeat_penalty != 1.0 and o.repeat_last_n > 0:
        add(llama_cpp.llama_sampler_init_penalties(n, o.repeat_last_n, o.repeat_penalty, 0.0, 0.0))
    if o.top_k > 0:
        add(llama_cpp.llama_sampler_init_top_k(o.top_k))
    if o.top_p < 1.0:
        add(llama_cpp.llama_sampler_init_top_p(o.top_p, 1))
    if o.min_p > 0.0:
        add(llama_cpp.llama_sampler_init_min_p(o.min_p, 1))
    add(llama_cpp.llama_sampler_init_temp(o.temperature))
    for t in history:
        llama_cpp.llama_sampler_accept(chain, t)
    data = (llama_cpp.llama_token_data * n)()
    for i, v in enumerate(logits):
        data[i].id, data[i].logit, data[i].p = i, float(v), 0.0
    cur = llama_cpp.llama_token_data_array(data, n, -1, False)
    llama_cpp.llama_sampler_apply(chain, ctypes.byref(cur))
    ids = [cur.data[i].id for i in range(cur.size)]
    kept = np.array([cur.data[i].logit for i in range(cur.size)], dtype=np.float64)
    llama_cpp.llama_sampler_free(chain)
    p = np.exp(kept - kept.max())
    return dict(zip(ids, (p / p.sum()).tolist()))


def test_numpy_chain_matches_llama_cpp_on_random_logits():
    rng = np.random.default_rng(1)
    for _ in range(120):
        n = int(rng.integers(5, 200))
        logits = (rng.standard_normal(n) * rng.uniform(0.5, 4)).astype(np.float32)
        o = SamplingOptions(temperature=float(rng.choice([0.3, 0.7, 1.5])), top_k=int(rng.choice([0, 1, 5, 40])),
                            top_p=float(rng.choice([1.0, 0.9, 0.5])), min_p=float(rng.choice([0.0, 0.05, 0.2])),
                            repeat_penalty=float(rng.choice([1.0, 1.3, 0.8])),
                            repeat_last_n=int(rng.choice([0, 8, 64])))
        history = rng.integers(0, n, size=20).tolist()
        ref = llama_chain_probs(logits, history, o)
        d = target_dist(logits, history, o)
        mine = dict(zip(d.tokens.tolist(), d.probs.tolist()))
        assert set(mine) == set(ref), o
        assert max(abs(mine[k] - ref[k]) for k in ref) < 1e-5


def test_greedy_token_applies_the_repeat_penalty():
    logits = np.array([1.0, 3.0, 2.9, -1.0], dtype=np.float32)
    plain = SamplingOptions(temperature=0.0, repeat_penalty=1.0)
    penal = SamplingOptions(temperature=0.0, repeat_penalty=1.3, repeat_last_n=4)
    assert greedy_token(logits, [1], plain) == 1
    assert greedy_token(logits, [1], penal) == 2  # 3.0 / 1.3 < 2.9
    assert greedy_token(logits, [], penal) == 1


def _chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


# chi-square critical values at p = 0.001 for the degrees of freedom used below
CHI2_999 = {4: 18.47, 5: 20.52}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accept_or_resample_follows_p_for_a_model_draft(seed):
    rng = np.random.default_rng(seed)
    tokens = np.arange(6)
    p = Dist(tokens, rng.dirichlet(np.ones(6)))
    # q has a different support and shape: token 5 impossible under q, token 0 absent from p's view of q
    qp = rng.dirichlet(np.ones(5))
    q = Dist(np.arange(5), qp)
    counts = np.zeros(6)
    n = 20000
    for _ in range(n):
        drafted = q.sample(rng)
        _, tok = accept_or_resample(p, q, drafted, rng)
        counts[tok] += 1
    assert _chi_square(counts, p.probs) < CHI2_999[5]


def test_accept_or_resample_follows_p_for_a_deterministic_lookup_draft():
    rng = np.random.default_rng(7)
    p = Dist(np.array([10, 11, 12, 13, 14]), np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
    counts = np.zeros(5)
    accepted = 0
    for _ in range(20000):
        ok, tok = accept_or_resample(p, None, 11, rng)  # the lookup always proposes token 11
        accepted += ok
        counts[tok - 10] += 1
    assert _chi_square(counts, p.probs) < CHI2_999[4]
    assert abs(accepted / 20000 - 0.2) < 0.02  # accepted with probability p(11)


def test_a_token_outside_p_is_always_rejected():
    rng = np.random.default_rng(0)
    p = Dist(np.array([1, 2]), np.array([0.6, 0.4]))
    for _ in range(50):
        ok, tok = accept_or_resample(p, None, 3, rng)
        assert not ok and tok in (1, 2)
