"""The decode loop: evaluate the prompt (reusing the cached prefix), then sample token by token.

The loop is a generator of evaluation requests (:mod:`inference.steps`): the engine's scheduler batches the
requests of every running sequence into one ``llama_decode``; :func:`generate` runs one loop alone.
"""

from __future__ import annotations

import time

import numpy as np
from typing import TYPE_CHECKING, Any, Callable, Generator, Sequence

from inference.events import GenerationStats, reply_stats
from inference.llama_model import LlamaModel, ShouldStop
from inference.repetition import LoopDetector
from inference.sampler import Sampler
from inference.sampling import SamplingOptions
from inference.steps import Eval, EvalResult, Exclusive, Request, drive, prefill
from inference.text_stream import TextStream

if TYPE_CHECKING:
    from inference.kv_state import StateCache


def generate(model: LlamaModel, prompt: Sequence[int], options: SamplingOptions, *,
             should_stop: ShouldStop, on_text: Callable[[str], None],
             started: float | None = None, grammar: str | None = None, keep: int = 4,
             states: StateCache | None = None, on_token: Callable[[int], None] | None = None) -> GenerationStats:
    """Generate a reply to ``prompt`` with ``model`` alone (its selected sequence); see :func:`generate_steps`."""
    return drive(model, generate_steps(model, prompt, options, should_stop=should_stop, on_text=on_text,
                                       started=started, grammar=grammar, keep=keep, states=states,
                                       on_token=on_token))


def generate_steps(model: LlamaModel, prompt: Sequence[int], options: SamplingOptions, *,
                   should_stop: ShouldStop, on_text: Callable[[str], None],
                   started: float | None = None, grammar: str | None = None, keep: int = 4,
                   states: StateCache | None = None, on_token: Callable[[int], None] | None = None,
                   on_logits: Callable[[int, int], None] | None = None, hidden: Sequence[str] = (),
                   on_hidden: Callable[[str, np.ndarray | None, float], None] | None = None
                   ) -> Generator[Request, Any, GenerationStats]:
    """Generate a reply to ``prompt`` in the model's selected sequence, streaming its text to ``on_text``;
    evaluation goes through the requests this generator yields.

    ``should_stop`` is checked before every token and between prompt parts; when it turns true the reply ends
    with finish reason ``cancelled``. With ``options.stop_loops`` a reply that turns into a verbatim loop ends with
    finish reason ``repetition`` (:mod:`inference.repetition`; the text already streamed is kept).

    Args:
        model: the loaded model; its KV cache is reused where it matches ``prompt``.
        prompt: prompt token ids.
        options: sampling settings (also ``max_tokens`` and ``stop``).
        should_stop: polled for cancellation.
        on_text: receives text as it becomes final.
        started: ``time.perf_counter()`` when the request began (default: now); TTFT counts from here.
        grammar: a GBNF grammar (root rule ``root``) every generated token must follow, or None.
        keep: leading tokens (system prompt, attention sinks) a context shift never drops.
        states: saved KV states to restore from and save to (conversation switching).
        on_token: receives each sampled token id (EOG included), for benchmarks and tests.
        on_logits: receives each sampled token id and the batch index of the logits row it was sampled from
            (log-probabilities, the router's uncertainty; the row is valid until the generator yields again).
        hidden: which of the model's last hidden states to read, for the router's hidden-state probe:
            ``"prompt"``, at the prompt's last token, and ``"first"``, after the first generated token. Each is read
            by evaluating that one token alone (an :class:`~inference.steps.Exclusive` step) with llama.cpp's
            embeddings output on, since an embeddings context outputs every token of a batch.
        on_hidden: receives ``(where, state, ms)`` for each state of ``hidden``: ``where`` as named there, the
            state (None for a pooled embedding model) and what reading it cost.

    Raises:
        EngineError: the prompt does not fit or llama.cpp failed.
    """
    t0 = started if started is not None else time.perf_counter()
    t_prompt = time.perf_counter()
    seq = model.seq
    try:
        cached, rest = model.prepare(prompt, states=states)
        if "prompt" in hidden:
            if not rest and model.last_hidden() is None:
                model.truncate(len(prompt) - 1)  # the last token once more, now with its hidden state
                cached, rest = len(prompt) - 1, [prompt[-1]]
            index = yield from _prefill_hidden(model, rest, should_stop, on_hidden)
        else:
            index = (yield from prefill(rest, should_stop)) if rest else _row(model)
    except InterruptedError:
        now = time.perf_counter()
        return GenerationStats(len(prompt), 0, 0, 0.0, (now - t_prompt) * 1000, 0.0, (now - t0) * 1000,
                               "cancelled")
    prompt_ms = (time.perf_counter() - t_prompt) * 1000
    stream = TextStream(options.stop)
    n_gen = 0
    n_decoded = 0  # generated tokens evaluated between the first and the last sample
    shifts = 0
    finish = "length"
    t_first = t_last = None
    loops = LoopDetector() if options.stop_loops else None
    with Sampler(options, n_vocab=model.n_vocab, grammar=grammar, vocab=model.vocab) as sampler:
        sampler.prime(prompt)
        while n_gen < options.max_tokens:
            if should_stop():
                finish = "cancelled"
                break
            token = sampler.sample(model.ctx, index)
            t_last = time.perf_counter()
            if t_first is None:
                t_first = t_last
            if on_token is not None:
                on_token(token)
            if on_logits is not None:
                on_logits(token, index)
            if model.is_eog(token):
                finish = "stop"
                break
            n_gen += 1
            text = stream.push(model.piece(token))
            if text:
                on_text(text)
            if stream.stopped:
                finish = "stop"
                break
            if loops is not None and loops.push(token):
                finish = "repetition"
                break
            if n_gen >= options.max_tokens:
                finish = "length"
                break
            model.select(seq)
            if len(model.tokens) + 1 >= model.n_ctx:
                # Context full mid-reply: drop the older half after the kept prefix, as llama.cpp does.
                discard = (len(model.tokens) - keep) // 2
                if discard <= 0 or not model.shift_out(keep, keep + discard):
                    finish = "length"
                    break
                shifts += 1
            if "first" in hidden and n_decoded == 0:  # the decode made anyway, its state read out
                yield Exclusive()
                t_h = time.perf_counter()
                state = model.decode_hidden(token)
                if on_hidden is not None:
                    on_hidden("first", state, (time.perf_counter() - t_h) * 1000)
                index = -1
            else:
                result: EvalResult = yield Eval([token])
                index = result.indices[-1]
            n_decoded += 1
    tail = stream.flush()
    if tail:
        on_text(tail)
    return reply_stats(prompt_tokens=len(prompt), cached_tokens=cached, completion_tokens=n_gen,
                       decoded=n_decoded, started=t0, prompt_ms=prompt_ms, first=t_first, last=t_last,
                       end=time.perf_counter(), finish_reason=finish, context_shifts=shifts or None)


def _row(model: LlamaModel) -> int:
    """The logits row after the whole cached prompt (``prepare`` left nothing to evaluate)."""
    row = model.logits_row()
    return -1 if row is None else row


def _prefill_hidden(model: LlamaModel, rest: list[int], should_stop: ShouldStop,
                    on_hidden: Callable[[str, np.ndarray | None, float], None] | None) -> Generator[Request, Any, int]:
    """Evaluate the prompt's ``rest`` with its last token alone and its hidden state read (see
    :func:`generate_steps`); return the batch index of the logits after the prompt. With nothing to evaluate, the
    state held for exactly these tokens (a glimpse rolled back) is reported again."""
    model.hidden_ms = 0.0
    if not rest:
        if on_hidden is not None:
            on_hidden("prompt", model.last_hidden(), 0.0)
        return _row(model)
    if len(rest) > 1:
        yield from prefill(rest[:-1], should_stop)
    if should_stop():
        raise InterruptedError("stopped while reading the prompt")
    yield Exclusive()
    model.read_hidden(rest[-1])
    if on_hidden is not None:
        on_hidden("prompt", model.last_hidden(), model.hidden_ms)
    return -1
