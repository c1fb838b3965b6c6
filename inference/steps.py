"""How a decode loop asks for evaluation: it yields requests, and whoever drives it batches them.

A generation is written once, as a generator that yields an :class:`Eval` whenever it needs tokens evaluated and
receives the batch indices of their logits back. The engine's scheduler (:mod:`inference.scheduler`) drives many
such generators at once and puts the requests of all of them into one ``llama_decode`` per step; :func:`drive` runs
one generator alone, evaluating each request directly (benchmarks, tests, and the look-ahead of other loops).

Besides :class:`Eval`, a generator may yield:

- :class:`Acquire`: it needs a sequence (KV slot) for a prompt and reserves the KV cells it may fill (prompt and
  reply); the answer is the sequence id, now selected. A scheduler answers only when the cells are free, so a
  request that fits the context alone is never refused, or cut off, because other sequences fill it.
- :class:`Exclusive`: it is about to compute outside the batch (speculative decoding, a router probe, a model load);
  it is resumed between steps, when no other sequence waits for logits, and runs alone until it yields again.
- :class:`Drain`: like :class:`Exclusive`, but only once no other sequence is in flight at all (loading or
  freeing a model: nothing may use the old one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator, Sequence

from inference.llama_model import LlamaModel, ShouldStop


@dataclass
class Eval:
    """Evaluate ``tokens`` after the selected sequence's cached ones.

    ``logits`` flags the tokens that need logits (None: the last one). A ``chunkable`` request (a prompt) may be
    served in parts across steps, never more than the scheduler's prefill chunk per step; only its last part gets
    logits, for its last token.
    """

    tokens: Sequence[int]
    logits: Sequence[bool] | None = None
    chunkable: bool = False

    def flags(self) -> list[bool]:
        """Which tokens need logits, one flag per token."""
        if self.logits is not None:
            return list(self.logits)
        return [i == len(self.tokens) - 1 for i in range(len(self.tokens))]


@dataclass(frozen=True)
class EvalResult:
    """What was evaluated of an :class:`Eval`: how many tokens, and the batch index of each logits row."""

    consumed: int
    indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class Acquire:
    """Ask for a sequence to hold ``prompt`` (None: any free one, the most recently used) and for ``reserve`` KV
    cells (None: the prompt's length; more than the context: the whole context, so the sequence runs alone)."""

    prompt: Sequence[int] | None = None
    reserve: int | None = None

    @property
    def cells(self) -> int:
        """The KV cells this sequence may fill."""
        if self.reserve is not None:
            return max(0, self.reserve)
        return len(self.prompt) if self.prompt is not None else 0


@dataclass(frozen=True)
class Exclusive:
    """Ask to run alone between steps (see the module docstring)."""


@dataclass(frozen=True)
class Drain:
    """Ask to run once no other sequence is in flight (see the module docstring)."""


Request = Eval | Acquire | Exclusive | Drain
Steps = Generator[Request, Any, Any]


def prefill(tokens: Sequence[int], should_stop: ShouldStop | None = None) -> Generator[Request, Any, int]:
    """Evaluate a prompt's remaining ``tokens`` (possibly over several steps); return the batch index of the
    logits after its last token.

    Raises:
        InterruptedError: ``should_stop`` became true between two parts.
    """
    rest = list(tokens)
    while True:
        if should_stop is not None and should_stop():
            raise InterruptedError("stopped while reading the prompt")
        result: EvalResult = yield Eval(rest, chunkable=True)
        rest = rest[result.consumed:]
        if not rest:
            return result.indices[-1]


def drive(model: LlamaModel, steps: Steps) -> Any:
    """Run ``steps`` alone on ``model``'s selected sequence, evaluating each request at once; return its result.

    :class:`Acquire` answers the selected sequence; :class:`Exclusive` and :class:`Drain` are granted at once.
    """
    value: Any = None
    while True:
        try:
            request = steps.send(value)
        except StopIteration as stop:
            return stop.value
        if isinstance(request, Eval):
            value = evaluate(model, request)
        elif isinstance(request, Acquire):
            value = model.seq
        else:
            value = None


def evaluate(model: LlamaModel, request: Eval) -> EvalResult:
    """Evaluate a whole request on the selected sequence, in ``n_batch`` parts."""
    tokens = list(request.tokens)
    flags = request.flags()
    indices: list[int] = []
    for start in range(0, len(tokens), model.n_batch):
        part = tokens[start:start + model.n_batch]
        part_flags = flags[start:start + model.n_batch]
        model.decode(part, logits=part_flags)
        indices = [i for i, f in enumerate(part_flags) if f] if start + model.n_batch >= len(tokens) else indices
    return EvalResult(len(tokens), tuple(indices))
