"""The decode loop: evaluate the prompt (reusing the cached prefix), then sample token by token.

The loop is a generator of evaluation requests (:mod:`inference.steps`): the engine's scheduler batches the
requests of every running sequence into one ``llama_decode``; :func:`generate` runs one loop alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Generator, Sequence

from inference.events import GenerationStats, reply_stats
from inference.llama_model import LlamaModel, ShouldStop
from inference.repetition import LoopDetector
from inference.sampler import Sampler
from inference.sampling import SamplingOptions
from inference.steps import Eval, EvalResult, Request, drive, prefill
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
                   on_logits: Callable[[int, int], None] | None = None
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
            (log-probabilities; the row is valid until the generator yields again).

    Raises:
        EngineError: the prompt does not fit or llama.cpp failed.
    """
    t0 = started if started is not None else time.perf_counter()
    t_prompt = time.perf_counter()
    seq = model.seq
    try:
        cached, rest = model.prepare(prompt, states=states)
        index = (yield from prefill(rest, should_stop)) if rest else -1
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
            result: EvalResult = yield Eval([token])
            index = result.indices[-1]
            n_decoded += 1
    tail = stream.flush()
    if tail:
        on_text(tail)
    return reply_stats(prompt_tokens=len(prompt), cached_tokens=cached, completion_tokens=n_gen,
                       decoded=n_decoded, started=t0, prompt_ms=prompt_ms, first=t_first, last=t_last,
                       end=time.perf_counter(), finish_reason=finish, context_shifts=shifts or None)
