"""Greedy text that holds on every CPU: robust answers and tie-aware comparison of two greedy runs.

llama.cpp picks kernels by CPU features, batch size and thread count, so the same model gives slightly different
logits on another machine (or with another ``n_ubatch``): differences of about 0.1-0.3 in a logit are ordinary.
Wherever the two likeliest next tokens are that close, greedy decoding may pick either, and everything after that
token differs. A test therefore never relies on which side of a near-tie greedy text falls:

- a test that needs a particular answer ("Paris") first checks, with :func:`assert_robust`, that on this machine
  every greedy step up to that answer wins by at least :data:`ROBUST` (far more than any CPU's rounding), so the
  answer it then expects from Ember cannot flip elsewhere; a prompt that is not robust fails that check clearly
  instead of failing mysteriously on the next CPU;
- a test that compares two greedy runs (cached vs fresh prefill, restored state, API vs engine, speculative vs
  plain) uses :func:`assert_greedy_agree`: the runs may part only where the reference's top-2 margin is within the
  evaluation noise measured on this machine for this model file (:func:`batch_noise`), and nothing after that point
  is compared.

The noise is measured, not guessed. The same tokens give slightly different logits when llama.cpp evaluates them
in another batch shape (one batch, token by token, a batch shared with other sequences) or in other KV cells (a
unified cache where other sequences' cells come first): without flash attention the attention's sums run in another
order, and a quantised model's 8-bit activations turn those ~0.05 differences into up to ~1.5 (measured on an AMD
EPYC: F16 0.07, Q4_1 1.55; ``ember bench isolation`` prints the table). :func:`batch_noise` takes each of those
paths on a second context over the same file (:mod:`inference.eval_noise`) and reports the largest difference; the
helpers below use it as their tie tolerance and print it when they fail.

The functions take a :class:`LlamaModel`; inside an engine run them on its worker (``engine.call``), where every
llama.cpp computation belongs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from inference.chat_prompt import fit_chat_prompt
from inference.eval_noise import Noise, log_softmax, measure_noise
from inference.llama_model import LlamaModel, forced_eval_path

SYSTEM = "You are a helpful assistant."  # Ember's default system prompt (app.settings)
# A question whose greedy answer names Paris with a wide margin at every step, also in batches of 1 (checked by
# the tests that rely on it, through robust_capital). "What is the capital of France?" alone is a near-tie on its
# first token ("The" / "La"), and on some CPUs the starter answers in French and loops.
CAPITAL_QUESTION = "Name the capital of France."
CAPITAL = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": CAPITAL_QUESTION}]

ROBUST = 1.0  # the margin a step needs before a test may rely on its greedy token (beyond any measured noise)


# -- evaluation noise, measured (inference/eval_noise.py) ------------------------------------------------------------

_noise: dict[tuple, Noise] = {}


def batch_noise(model: LlamaModel) -> Noise:
    """The evaluation noise of ``model``'s file with its context parameters on this machine
    (:func:`inference.eval_noise.measure_noise`), measured once per file, parameters and forced evaluation path."""
    key = (str(model.path), model.params, forced_eval_path())
    if key not in _noise:
        _noise[key] = measure_noise(model.path, model.params)
    return _noise[key]


@dataclass(frozen=True)
class GreedyRun:
    """A greedy continuation with the top-1 minus top-2 logit margin of every step (the last step may be the
    end-of-generation token, which is not in ``tokens``)."""

    prompt: list[int]
    tokens: list[int]
    margins: list[float]
    pieces: list[bytes]  # each token's bytes
    text: str
    stopped: bool  # ended with an end-of-generation token
    noise: Noise | None = None  # the model's measured evaluation noise (the tie tolerance of comparisons with it)

    def __str__(self) -> str:
        steps = ", ".join(f"{m:.2f}" for m in self.margins)
        return f"greedy text {self.text!r}, margins [{steps}]"


def _margin(row: np.ndarray) -> float:
    top2 = np.partition(row, -2)[-2:]
    return float(top2[1] - top2[0])


def _row_after(model: LlamaModel, tokens: Sequence[int]) -> np.ndarray:
    model.ingest_prompt(list(tokens))
    row = model.next_logits()
    assert row is not None, "llama.cpp kept no logits after the prompt"
    return row


def greedy_run(model: LlamaModel, prompt: Sequence[int], n: int) -> GreedyRun:
    """Up to ``n`` greedy tokens after ``prompt``, one decode per token (as the engine decodes a reply)."""
    prompt = list(prompt)
    model.clear()
    row = _row_after(model, prompt)
    tokens: list[int] = []
    margins: list[float] = []
    stopped = False
    for _ in range(n):
        tok = int(np.argmax(row))
        margins.append(_margin(row))
        if model.is_eog(tok):
            stopped = True
            break
        tokens.append(tok)
        if len(tokens) == n:
            break
        model.decode([tok])
        row = model.next_logits()
    pieces = [model.piece(t) for t in tokens]
    return GreedyRun(prompt, tokens, margins, pieces, b"".join(pieces).decode("utf-8", errors="replace"), stopped,
                     batch_noise(model))


def chat_tokens(model: LlamaModel, messages: Sequence[Mapping[str, str]], max_tokens: int = 256) -> list[int]:
    """The prompt the engine builds for ``messages`` (the model's chat template)."""
    return fit_chat_prompt(model, messages, max_tokens).tokens


def greedy_chat(model: LlamaModel, messages: Sequence[Mapping[str, str]], n: int) -> GreedyRun:
    """:func:`greedy_run` on the engine's chat prompt for ``messages``."""
    return greedy_run(model, chat_tokens(model, messages, n), n)


def assert_robust(run: GreedyRun, *, until: str | None = None, min_margin: float = ROBUST) -> GreedyRun:
    """Every greedy step of ``run`` that a test relies on wins by at least ``min_margin``, and by at least twice the
    largest top-2 margin change measured on this machine (:func:`batch_noise`, carried by ``run``).

    With ``until``, the steps up to the token that completes ``until`` in the text (which must appear); without it,
    the whole run, which must have stopped, including its end-of-generation step. Returns ``run``.
    """
    if until is None:
        assert run.stopped, f"the greedy answer does not end within {len(run.tokens)} tokens; {run}"
        upto = len(run.margins)
    else:
        text = b""
        upto = None
        for i, piece in enumerate(run.pieces):
            text += piece
            if until in text.decode("utf-8", errors="replace"):
                upto = i + 1
                break
        assert upto is not None, f"the greedy answer does not contain {until!r}: {run}"
    if run.noise is not None:
        min_margin = max(min_margin, 2 * run.noise.margin)
    weak = [(i, m) for i, m in enumerate(run.margins[:upto]) if m < min_margin]
    assert not weak, (f"not a robust prompt on this machine: step {weak[0][0]} wins by only {weak[0][1]:.3f} "
                      f"(< {min_margin:.3f}), so another CPU may answer differently; {run.noise}; {run}")
    return run


def robust_capital(model: LlamaModel, n: int, *, whole: bool = False) -> GreedyRun:
    """The greedy answer to :data:`CAPITAL` on this machine, checked robust up to "Paris" (``whole``: up to its
    end, which must come within ``n`` tokens)."""
    return assert_robust(greedy_chat(model, CAPITAL, n), until=None if whole else "Paris")


def assert_greedy_agree(model: LlamaModel, prompt: Sequence[int], a: Sequence[int] | str,
                        b: Sequence[int] | str, *, tie: float | None = None) -> None:
    """Two greedy continuations of ``prompt`` agree up to a near-tie.

    ``a`` and ``b`` are token lists or texts (texts are tokenized without special tokens). Where they first part,
    ``model`` evaluates the shared part and its two likeliest next tokens must be within ``tie`` of each other
    (None: the model's measured noise, :func:`batch_noise`); nothing after that point is compared. Equal runs
    always agree.
    """
    ta = model.tokenize(a, add_special=False, parse_special=False) if isinstance(a, str) else list(a)
    tb = model.tokenize(b, add_special=False, parse_special=False) if isinstance(b, str) else list(b)
    if ta == tb:
        return
    i = 0
    while i < min(len(ta), len(tb)) and ta[i] == tb[i]:
        i += 1
    noise = batch_noise(model)
    tie = noise.tie if tie is None else tie
    model.clear()
    margin = _margin(_row_after(model, list(prompt) + ta[:i]))
    shown = lambda t: repr(b"".join(model.piece(x) for x in t).decode("utf-8", errors="replace"))  # noqa: E731
    assert margin < tie, (f"greedy runs part at token {i} where the top-2 margin is {margin:.3f} (>= {tie:.3f}): "
                          f"not a near-tie; {noise}.\n  shared: {shown(ta[:i])}\n  a: {shown(ta[i:])}\n"
                          f"  b: {shown(tb[i:])}")


def assert_same_greedy(reference: GreedyRun, tokens: Sequence[int], *, tie: float | None = None) -> None:
    """``tokens`` (another greedy continuation of ``reference.prompt``, without the end-of-generation token) agree
    with ``reference`` up to a near-tie of the reference's own margins (``tie`` None: the noise measured with the
    reference); a run that ends earlier or later than the reference parts from it at that step."""
    noise = reference.noise
    if tie is None:
        assert noise is not None, "the reference run carries no measured noise: pass tie"
        tie = noise.tie
    tokens = list(tokens)
    n = min(len(tokens), len(reference.tokens))
    i = next((k for k in range(n) if tokens[k] != reference.tokens[k]), n)
    if i == n and len(tokens) == len(reference.tokens):
        return
    assert i < len(reference.margins), (f"the other run goes on past the reference's {len(reference.tokens)} "
                                        f"tokens; {reference}")
    assert reference.margins[i] < tie, (f"outputs differ at token {i} where the reference's margin is "
                                        f"{reference.margins[i]:.3f} (>= {tie:.3f}): not a near-tie; {noise}; "
                                        f"{reference}")


def assert_grammar_greedy_agree(model: LlamaModel, prompt: Sequence[int], grammar: str, a: Sequence[int],
                                b: Sequence[int], *, tie: float | None = None) -> None:
    """Two greedy continuations of ``prompt`` under ``grammar`` agree up to a near-tie among the tokens the grammar
    allows where they part (the grammar may forbid the unconstrained top-2; ``tie`` None: the measured noise)."""
    from inference.grammar import GrammarDists

    ta, tb = list(a), list(b)
    if ta == tb:
        return
    i = 0
    while i < min(len(ta), len(tb)) and ta[i] == tb[i]:
        i += 1
    gate = GrammarDists(grammar, model)
    try:
        for tok in ta[:i]:
            gate.accept(tok)
        model.clear()
        row = gate.masked(_row_after(model, list(prompt) + ta[:i]))
    finally:
        gate.close()
    noise = batch_noise(model)
    tie = noise.tie if tie is None else tie
    margin = _margin(row)
    shown = lambda t: repr(b"".join(model.piece(x) for x in t).decode("utf-8", errors="replace"))  # noqa: E731
    assert margin < tie, (f"greedy runs under the grammar part at token {i} where the top-2 margin among allowed "
                          f"tokens is {margin:.3f} (>= {tie:.3f}): not a near-tie; {noise}.\n"
                          f"  shared: {shown(ta[:i])}\n"
                          f"  a: {shown(ta[i:])}\n  b: {shown(tb[i:])}")
