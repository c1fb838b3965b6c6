"""A llama.cpp sampler chain built from :class:`SamplingOptions`."""

from __future__ import annotations

import ctypes
from typing import Sequence

import llama_cpp
import numpy as np

from inference.grammar import GrammarGate
from inference.sampling import SamplingOptions


# DRY's other parameters: llama.cpp's defaults at the vendored commit (common.h, the server's README). Its
# ``dry_penalty_last_n`` is clamped to >= 0 there: -1 (once "the whole context") would turn DRY off, not widen it.
DRY_BASE = 1.75
DRY_ALLOWED_LENGTH = 2
DRY_PENALTY_LAST_N = 64
DRY_SEQUENCE_BREAKERS = ("\n", ":", "\"", "*")


def end_of_generation_tokens(vocab: llama_cpp.llama_vocab_p, n_vocab: int) -> list[int]:
    """Every token id the vocabulary treats as the end of generation (EOS, EOT, ...)."""
    return [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)]


class Sampler:
    """Picks tokens from a context's logits: penalties, DRY, top-k, top-p, min-p, temperature, then a draw.

    At temperature 0 the chain is greedy (after penalties and DRY), as in llama.cpp. DRY (``dry_multiplier`` > 0)
    needs the model's vocabulary, to find the tokens its sequence breakers are made of.
    """

    def __init__(self, options: SamplingOptions, *, n_vocab: int, grammar: str | None = None,
                 vocab: llama_cpp.llama_vocab_p | None = None) -> None:
        # A GBNF grammar (root rule ``root``) constrains every token; it needs the model's vocabulary.
        self._gate = None
        if grammar is not None:
            if vocab is None:
                raise ValueError("a grammar needs the model's vocab")
            self._gate = GrammarGate(grammar, vocab=vocab, n_vocab=n_vocab)
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(params)
        add = lambda s: llama_cpp.llama_sampler_chain_add(self._chain, s)  # noqa: E731
        if options.ignore_eos:
            if vocab is None:
                raise ValueError("ignore_eos needs the model's vocab")
            eog = end_of_generation_tokens(vocab, n_vocab)
            bias = (llama_cpp.llama_logit_bias * len(eog))(*(llama_cpp.llama_logit_bias(t, float("-inf"))
                                                              for t in eog))
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(eog), bias))
        self.uses_history = options.repeat_penalty != 1.0 and options.repeat_last_n > 0
        if self.uses_history:
            add(llama_cpp.llama_sampler_init_penalties(n_vocab, options.repeat_last_n,
                                                       options.repeat_penalty, 0.0, 0.0))
        self.history_len = options.repeat_last_n if self.uses_history else 0
        if options.dry_multiplier > 0.0:
            if vocab is None:
                raise ValueError("DRY needs the model's vocab")
            breakers = [b.encode("utf-8") for b in DRY_SEQUENCE_BREAKERS]
            arr = (ctypes.c_char_p * len(breakers))(*breakers)
            add(llama_cpp.llama_sampler_init_dry(vocab, options.dry_multiplier, DRY_BASE, DRY_ALLOWED_LENGTH,
                                                 DRY_PENALTY_LAST_N, arr, len(breakers)))
            self.uses_history = True
            self.history_len = max(self.history_len, DRY_PENALTY_LAST_N)
        # Plain greedy decoding (no penalties, DRY, bias or grammar) takes the first highest logit itself, as
        # llama.cpp's greedy sampler does: 5-10 us instead of the chain's ~200 us (it copies all n_vocab logits into
        # a candidates array first), about 1% of a token of the starter on 2 cores.
        self._argmax = options.temperature <= 0.0 and not self.uses_history and not options.ignore_eos \
            and self._gate is None
        self._n_vocab = n_vocab
        if options.temperature <= 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            if options.top_k > 0:
                add(llama_cpp.llama_sampler_init_top_k(options.top_k))
            if options.top_p < 1.0:
                add(llama_cpp.llama_sampler_init_top_p(options.top_p, 1))
            if options.min_p > 0.0:
                add(llama_cpp.llama_sampler_init_min_p(options.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(options.temperature))
            seed = llama_cpp.LLAMA_DEFAULT_SEED if options.seed is None else options.seed
            add(llama_cpp.llama_sampler_init_dist(seed))

    def prime(self, history: Sequence[int]) -> None:
        """Feed the recent context (prompt tokens) to the penalties and DRY, so repeats of the prompt count too."""
        if not self.uses_history:
            return
        for tok in history[-self.history_len:]:
            llama_cpp.llama_sampler_accept(self._chain, tok)

    def sample(self, ctx: llama_cpp.llama_context_p, idx: int = -1) -> int:
        """Sample from the logits at batch index ``idx`` (the chain also records the token)."""
        if self._gate is not None:
            return self._gate.sample(self._chain, ctx, idx)
        if self._argmax:
            ptr = llama_cpp.llama_get_logits_ith(ctx, idx)
            if ptr:
                return int(np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).argmax())
        return llama_cpp.llama_sampler_sample(self._chain, ctx, idx)

    def close(self) -> None:
        """Free the chain (idempotent)."""
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self._gate is not None:
            self._gate.close()

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
