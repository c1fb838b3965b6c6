"""Sentence embeddings from a loaded model: a second, short-lived llama.cpp context with mean pooling.

The embeddings context shares the model's weights with the generation context but has its own (small) KV cache,
so computing embeddings never disturbs the cached prompt of a conversation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import llama_cpp

from inference.errors import EngineError
from inference.llama_model import LlamaModel, ShouldStop, put_tokens


@dataclass(frozen=True)
class EmbeddingResult:
    """One L2-normalised vector per input text, and how many tokens the inputs had in all."""

    vectors: list[list[float]]
    prompt_tokens: int


def embed_texts(model: LlamaModel, texts: Sequence[str], *, should_stop: ShouldStop | None = None) -> EmbeddingResult:
    """Embed each of ``texts`` with ``model`` (mean of the last hidden states, normalised to unit length).

    Raises:
        EngineError: an input is empty or longer than the model's training context, or llama.cpp failed.
        InterruptedError: ``should_stop`` became true between inputs.
    """
    tokenized = [model.tokenize(text, add_special=True, parse_special=False) for text in texts]
    if not tokenized:
        raise EngineError("There is nothing to embed: the input list is empty.")
    for i, tokens in enumerate(tokenized):
        if not tokens:
            raise EngineError(f"Input {i} is empty: there is nothing to embed.")
    longest = max(len(t) for t in tokenized)
    limit = model.n_ctx_train if model.n_ctx_train > 0 else model.n_ctx
    if longest > limit:
        raise EngineError(f"An input is {longest} tokens long; this model embeds at most {limit} tokens at once.")
    n_ctx = max(64, -(-longest // 64) * 64)
    cparams = llama_cpp.llama_context_default_params()
    cparams.embeddings = True
    cparams.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_MEAN
    cparams.n_ctx = n_ctx
    cparams.n_batch = n_ctx
    cparams.n_ubatch = n_ctx
    cparams.n_seq_max = 1
    cparams.n_threads = model.n_threads
    cparams.n_threads_batch = model.n_threads
    cparams.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model.raw_model, cparams)
    if not ctx:
        raise EngineError("llama.cpp could not create an embeddings context (probably not enough memory).")
    batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
    n_embd = llama_cpp.llama_model_n_embd(model.raw_model)
    try:
        memory = llama_cpp.llama_get_memory(ctx)
        vectors = []
        for tokens in tokenized:
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped while embedding")
            llama_cpp.llama_memory_clear(memory, True)
            batch.n_tokens = len(tokens)
            put_tokens(batch, 0, tokens, seq=0, pos0=0, logits=[True] * len(tokens))
            rc = llama_cpp.llama_decode(ctx, batch)
            if rc != 0:
                raise EngineError(f"llama.cpp failed to embed {len(tokens)} tokens (code {rc}).")
            ptr = llama_cpp.llama_get_embeddings_seq(ctx, 0)
            if not ptr:
                raise EngineError("llama.cpp returned no embedding for this model.")
            vectors.append(_normalise(ptr[:n_embd]))
        return EmbeddingResult(vectors, sum(len(t) for t in tokenized))
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)


def _normalise(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec] if norm > 0 else list(vec)
