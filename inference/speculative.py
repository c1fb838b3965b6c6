"""The speculative decode loop: draft K tokens, verify them with the target in one batch, keep the valid prefix.

Like the plain loop (:mod:`inference.generate`) it is a generator of evaluation requests, so the engine's scheduler
puts each verify batch into the same ``llama_decode`` as the other sequences' tokens (a speculative reply is one
more sequence of the batch), its prompt is read in chunks, and it reuses cached prefixes and saved KV states the
same way. A grammar constrains it as it does the plain path: each verified position takes the token the grammar
allows, so a drafted token the grammar forbids is simply rejected.

Invariant between rounds: ``history`` holds every accepted token (prompt and reply); the target's KV cache holds all
of them but the last, which goes first in the next verify batch. A round evaluates ``[last] + draft`` in one decode
call with logits at each of those positions, accepts the longest valid prefix of the draft plus one token of the
target's own, and removes the KV entries past the accepted point (the drafter's own cache is cut back the same way
when it next drafts).

At temperature 0 a draft token is valid when it is the target's greedy choice (after the repeat penalty), so the
reply is the target's greedy reply. At temperature > 0 speculative sampling keeps the target's distribution, with p
shaped by the same settings as the plain sampler chain (see :mod:`inference.spec_sampling`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generator, Sequence

import numpy as np

from inference.draft_control import DraftController
from inference.drafters import Draft, Drafter, logits_row
from inference.events import GenerationStats, reply_stats
from inference.llama_model import LlamaModel, ShouldStop
from inference.repetition import LoopDetector
from inference.sampling import SamplingOptions
from inference.grammar import GrammarDists
from inference.spec_sampling import Dist, accept_or_resample, greedy_token, target_dist
from inference.steps import Eval, EvalResult, Request, drive, prefill
from inference.text_stream import TextStream

if TYPE_CHECKING:
    from inference.kv_state import StateCache


@dataclass
class SpecCounters:
    """Running figures of one speculative reply."""

    drafted: int = 0
    accepted: int = 0
    rounds: int = 0  # verify calls that carried a draft
    plain_steps: int = 0  # verify calls without a draft
    draft_s: float = 0.0
    verify_s: float = 0.0
    accepted_lengths: list[int] = field(default_factory=list)


def generate_speculative(model: LlamaModel, drafter: Drafter, prompt: Sequence[int], options: SamplingOptions, *,
                         should_stop: ShouldStop, on_text: Callable[[str], None], started: float | None = None,
                         controller: DraftController | None = None,
                         on_token: Callable[[int], None] | None = None, grammar: str | None = None,
                         states: "StateCache | None" = None, keep: int = 4) -> GenerationStats:
    """:func:`speculative_steps` run alone on ``model``'s selected sequence."""
    return drive(model, speculative_steps(model, drafter, prompt, options, should_stop=should_stop, on_text=on_text,
                                          started=started, controller=controller, on_token=on_token,
                                          grammar=grammar, states=states, keep=keep))


def speculative_steps(model: LlamaModel, drafter: Drafter, prompt: Sequence[int], options: SamplingOptions, *,
                      should_stop: ShouldStop, on_text: Callable[[str], None], started: float | None = None,
                      controller: DraftController | None = None,
                      on_token: Callable[[int], None] | None = None, grammar: str | None = None,
                      states: "StateCache | None" = None, keep: int = 4) -> Generator[Request, Any, GenerationStats]:
    """Generate a reply like :func:`inference.generate.generate_steps`, drafting with ``drafter``.

    The loop check (``options.stop_loops``) sees the accepted tokens as they are released, so a loop ends at the
    same token as on the plain path.

    Args:
        model: the target model; its KV cache is reused where it matches ``prompt``.
        drafter: proposes tokens (its model, if any, is kept in step with the accepted text).
        prompt: prompt token ids.
        options: sampling settings (also ``max_tokens`` and ``stop``).
        should_stop: polled before every round and before every token is released.
        on_text: receives text as it becomes final.
        started: ``time.perf_counter()`` when the request began (default: now).
        controller: chooses the draft length (default: adaptive, up to 8).
        on_token: receives each reply token id as it is released (EOG included), for tests and benchmarks.
        grammar: a GBNF grammar (root rule ``root``) every reply token must follow, or None.
        states: saved KV states to restore the prompt from (conversation switching).
        keep: leading tokens a context shift never drops. When the context is full mid-reply, the older half after
            them is shifted out of the target's cache as on the plain path (the drafters follow on their own: the
            lookup index is rebuilt, a draft model re-reads the shortened history at its next draft).

    Returns:
        The reply's stats with the speculative fields filled in.

    Raises:
        EngineError: the prompt does not fit or llama.cpp failed.
    """
    ctl = controller or DraftController()
    t0 = started if started is not None else time.perf_counter()
    t_prompt = time.perf_counter()
    drafter.select(model.seq)
    try:
        cached, rest = model.prepare(prompt, states=states)
        index = (yield from prefill(rest, should_stop)) if rest else model.logits_row()
    except InterruptedError:
        now = time.perf_counter()
        return GenerationStats(len(prompt), 0, 0, 0.0, (now - t_prompt) * 1000, 0.0, (now - t0) * 1000,
                               "cancelled", speculative=drafter.kind)
    prompt_ms = (time.perf_counter() - t_prompt) * 1000
    greedy = options.temperature <= 0.0
    rng = np.random.default_rng(options.seed)
    use_penalty = options.repeat_penalty != 1.0 and options.repeat_last_n > 0
    last_n = options.repeat_last_n
    stream = TextStream(options.stop)
    history = list(prompt)
    c = SpecCounters()
    shifts = 0
    n_gen = 0
    n_released = 0
    finish = "length"
    t_first = t_last = None
    loops = LoopDetector() if options.stop_loops else None
    gate = GrammarDists(grammar, model) if grammar is not None else None

    def dist(row: np.ndarray, hist: Sequence[int]) -> Dist:
        p = target_dist(row, hist, options)
        return p if gate is None else gate.constrain(p, row, hist, options)

    def pick(row: np.ndarray, extra: Sequence[int]) -> int:
        hist = (history[-last_n:] + list(extra)) if use_penalty else ()
        if greedy:
            tok = greedy_token(row, hist, options) if gate is None else gate.greedy(row, hist, options)
        else:
            tok = dist(row, hist).sample(rng)
        if gate is not None:
            gate.accept(tok)
        return tok

    def release(token: int) -> str | None:
        """Emit one token; returns the finish reason when the reply ends with it."""
        nonlocal n_gen, n_released, t_first, t_last
        if should_stop():
            return "cancelled"
        t_last = time.perf_counter()
        if t_first is None:
            t_first = t_last
        else:
            n_released += 1
        if on_token is not None:
            on_token(token)
        if model.is_eog(token):
            return "stop"
        n_gen += 1
        text = stream.push(model.piece(token))
        if text:
            on_text(text)
        if stream.stopped:
            return "stop"
        if loops is not None and loops.push(token):
            return "repetition"
        if n_gen >= options.max_tokens:
            return "length"
        return None

    try:
        end_reason = None
        if options.max_tokens > 0:
            first = pick(logits_row(model, -1 if index is None else index), ())
            end_reason = release(first)
            history.append(first)
        while end_reason is None:
            if should_stop():
                end_reason = "cancelled"
                break
            room = model.n_ctx - len(history)  # the verify batch ends at len(history) - 1 + 1 + k
            if room < 2:
                # Context full mid-reply: drop the older half after the kept prefix, as the plain loop does. The
                # cache holds every accepted token but the last, so it and ``history`` lose the same span.
                discard = (len(history) - 1 - keep) // 2
                if discard <= 0 or not model.shift_out(keep, keep + discard):
                    end_reason = "length"
                    break
                del history[keep:keep + discard]
                shifts += 1
                room = model.n_ctx - len(history)
            cap = min(options.max_tokens - n_gen - 1, room - 1, model.n_batch - 1)
            draft, key = Draft(), None
            t_d = time.perf_counter()
            if drafter.free and cap > 0:  # look first, then verify as much of the proposal as pays
                draft = drafter.propose(history, min(ctl.max_draft, cap), options, rng)
                key = draft.key
                k = min(ctl.next_k(key), cap) if draft.tokens else 0
                draft.tokens = draft.tokens[:k]
            elif cap > 0:
                key = None
                k = min(ctl.next_k(), cap)
                if k > 0:
                    draft = drafter.propose(history, k, options, rng)
                    draft.tokens = draft.tokens[:k]
            t_v = time.perf_counter()
            batch = [history[-1]] + draft.tokens
            n_keep = len(history) - 1
            model.truncate(n_keep)  # normally a no-op: the cache holds everything but the last accepted token
            result: EvalResult = yield Eval(batch, logits=[True] * len(batch))
            new: list[int] = []
            for i in range(len(batch)):
                row = logits_row(model, result.indices[i])
                if i < len(draft.tokens):
                    proposed = draft.tokens[i]
                    if greedy:
                        tok = pick(row, new)
                        ok = tok == proposed
                    else:
                        hist = (history[-last_n:] + new) if use_penalty else ()
                        ok, tok = accept_or_resample(dist(row, hist), draft.q[i] if draft.q is not None else None,
                                                     proposed, rng)
                        if gate is not None:
                            gate.accept(tok)
                    new.append(tok)
                    if not ok:
                        break
                else:
                    new.append(pick(row, new))
            n_acc = len(new) - 1
            model.truncate(len(history) + n_acc)  # drop KV of the rejected drafts
            t_end = time.perf_counter()
            # The controller prices drafted tokens; the drafter's catch-up after a pause is a one-off, not per token.
            ctl.record(drafted=len(draft.tokens), accepted=n_acc, draft_s=max(0.0, t_v - t_d - draft.catchup_s),
                       verify_s=t_end - t_v, batch=len(batch), key=key)
            if draft.tokens:
                c.rounds += 1
                c.drafted += len(draft.tokens)
                c.accepted += n_acc
                c.draft_s += t_v - t_d
                c.accepted_lengths.append(n_acc)
            else:
                c.plain_steps += 1
            c.verify_s += t_end - t_v
            for tok in new:
                end_reason = release(tok)
                history.append(tok)
                if end_reason is not None:
                    break
    finally:
        if gate is not None:
            gate.close()
    finish = end_reason or finish
    tail = stream.flush()
    if tail:
        on_text(tail)
    return reply_stats(
        prompt_tokens=len(prompt), cached_tokens=cached, completion_tokens=n_gen, decoded=n_released, started=t0,
        prompt_ms=prompt_ms, first=t_first, last=t_last, end=time.perf_counter(), finish_reason=finish,
        speculative=drafter.kind, drafted=c.drafted, accepted=c.accepted,
        acceptance_rate=round(c.accepted / c.drafted, 4) if c.drafted else None,
        mean_accepted_length=round(sum(c.accepted_lengths) / len(c.accepted_lengths), 3) if c.rounds else None,
        draft_ms=round(c.draft_s * 1000, 2), verify_ms=round(c.verify_s * 1000, 2),
        verify_calls=c.rounds + c.plain_steps, context_shifts=shifts or None,
    )
