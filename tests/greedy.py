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
EPYC: F16 0.07, Q8_0 1.6, Q4_1 1.6; ``ember bench isolation`` prints the table). :func:`batch_noise` takes each of
those paths on a second context over the same file and reports the largest difference; the helpers below use it as
their tie tolerance and print it when they fail.

The functions take a :class:`LlamaModel`; inside an engine run them on its worker (``engine.call``), where every
llama.cpp computation belongs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from inference.chat_prompt import fit_chat_prompt
from inference.llama_model import LlamaModel, forced_eval_path

SYSTEM = "You are a helpful assistant."  # Ember's default system prompt (app.settings)
# A question whose greedy answer names Paris with a wide margin at every step, also in batches of 1 (checked by
# the tests that rely on it, through robust_capital). "What is the capital of France?" alone is a near-tie on its
# first token ("The" / "La"), and on some CPUs the starter answers in French and loops.
CAPITAL_QUESTION = "Name the capital of France."
CAPITAL = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": CAPITAL_QUESTION}]

ROBUST = 1.0  # the margin a step needs before a test may rely on its greedy token (beyond any measured noise)
NOISE_FLOOR = 1e-3  # a tolerance never below this, for a path that measured bit-identical


# -- evaluation noise, measured ------------------------------------------------------------------------------------

NOISE_PROMPTS = (
    "<|im_start|>user\nCopy this code exactly, then stop:\ndef area(width, height):\n    result = width * height\n"
    "    return result\n\ndef perimeter(width, height):\n    result = 2 * (width + height)\n    return result\n"
    "<|im_end|>\n<|im_start|>assistant\n```python\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWrite a short story about a "
    "lighthouse keeper who finds a message in a bottle.<|im_end|>\n<|im_start|>assistant\n",
)
OTHER_TEXT = ("<|im_start|>user\nList ten fruits and say which colour each one is, one per line, with a short "
              "note on its taste.<|im_end|>\n<|im_start|>assistant\n")
NOISE_STEPS = 40


@dataclass(frozen=True)
class Noise:
    """How far one model's logits move when the same tokens are evaluated on other paths (see the module
    docstring): the largest difference of any logit, of any top-20 log-probability, and of a top-2 margin, each
    over every path and step, and the path that gave the largest logit difference."""

    logit: float
    logprob: float
    margin: float
    worst_path: str

    @property
    def tie(self) -> float:
        """The tie tolerance: a top-2 margin this small may be decided the other way by another path."""
        return max(self.logit, NOISE_FLOOR)

    def __str__(self) -> str:
        return (f"measured evaluation noise: logits {self.logit:.3f}, top-20 logprobs {self.logprob:.3f}, "
                f"top-2 margins {self.margin:.3f} (worst path: {self.worst_path})")


_noise: dict[tuple, Noise] = {}


def log_softmax(row: np.ndarray) -> np.ndarray:
    """Log-probabilities of a logits row (float64)."""
    r = row.astype(np.float64)
    peak = r.max()
    return r - (peak + np.log(np.exp(r - peak).sum()))


def batch_noise(model: LlamaModel) -> Noise:
    """The evaluation noise of ``model``'s file with its context parameters on this machine (measured once per
    file, parameters and forced evaluation path, on a second context of three sequences).

    Each prompt of :data:`NOISE_PROMPTS` is evaluated in one batch and greedily continued token by token (the
    reference); then the same tokens are evaluated on other paths (the prompt token by token, in chunks of 8, after
    another sequence's cells fill the front of the cache, in chunks of 64 inside batches with tokens of two other
    sequences, and interleaved with another sequence's decodes), and every step's logits row is compared."""
    key = (str(model.path), model.params, forced_eval_path())
    if key not in _noise:
        _noise[key] = _measure(model)
    return _noise[key]


def _measure(model: LlamaModel) -> Noise:
    m = LlamaModel(model.path, replace(model.params, n_seq=3, n_park=0))
    try:
        worst = {"logit": 0.0, "logprob": 0.0, "margin": 0.0}
        worst_path = "none"
        other = m.tokenize(OTHER_TEXT, add_special=True)
        for text in NOISE_PROMPTS:
            prompt = m.tokenize(text, add_special=True)
            ref_rows, tokens = _forced_rows(m, prompt, None, lambda: m.decode(prompt))
            for name, fill in _paths(m, prompt, other).items():
                rows, _ = _forced_rows(m, prompt, tokens, fill)
                for ref, row in zip(ref_rows, rows):
                    d_logit = float(np.abs(ref - row).max())
                    top = np.argpartition(ref, -20)[-20:]
                    d_lp = float(np.abs(log_softmax(ref)[top] - log_softmax(row)[top]).max())
                    a, b = np.argsort(ref)[-2:][::-1]
                    d_m = abs(float(ref[a] - ref[b]) - float(row[a] - row[b]))
                    if d_logit > worst["logit"]:
                        worst_path = name
                    worst = {"logit": max(worst["logit"], d_logit), "logprob": max(worst["logprob"], d_lp),
                             "margin": max(worst["margin"], d_m)}
        return Noise(worst["logit"], worst["logprob"], worst["margin"], worst_path)
    finally:
        m.close()


def _forced_rows(m: LlamaModel, prompt: list[int], tokens: list[int] | None, fill) -> tuple[list[np.ndarray], list[int]]:
    """Evaluate ``prompt`` in sequence 0 with ``fill``, then decode ``tokens`` one at a time (None: the greedy
    ones); return the logits row before each token, and the tokens."""
    m.clear_all()
    m.select(0)
    fill()
    m.select(0)
    row = m.next_logits()
    assert row is not None, "no logits after the prompt"
    rows, out = [], []
    for i in range(NOISE_STEPS):
        rows.append(row)
        tok = int(np.argmax(row)) if tokens is None else tokens[i]
        out.append(tok)
        m.decode([tok])
        row = m.next_logits()
    return rows, out


def _paths(m: LlamaModel, prompt: list[int], other: list[int]) -> dict:
    def each() -> None:
        for t in prompt:
            m.decode([t])

    def chunks8() -> None:
        for s in range(0, len(prompt), 8):
            m.decode(prompt[s:s + 8])

    def offset() -> None:
        m.select(1)
        m.decode(other)
        m.select(0)
        m.decode(prompt)

    def mixed() -> None:
        m.select(1)
        m.decode(other[:8])
        m.select(2)
        m.decode(other[:4])
        at, k = 0, 0
        while at < len(prompt):
            part = prompt[at:at + 64]
            m.decode_batch([(1, [other[8 + k]], [True]), (0, part, [i == len(part) - 1 for i in range(len(part))]),
                            (2, other[4 + 2 * k:6 + 2 * k], [False, True])])
            at, k = at + len(part), k + 1
        m.select(0)
        m.restore_next_logits(_row_copy(m, len(part)), len(part))

    def interleaved() -> None:
        at, k = 0, 0
        while at < len(prompt):
            m.select(1)
            m.decode([other[k]])
            m.select(0)
            m.decode(prompt[at:at + 8])
            at, k = at + 8, k + 1

    return {"token by token": each, "chunks of 8": chunks8, "after another sequence": offset,
            "mixed batch": mixed, "interleaved": interleaved}


def _row_copy(m: LlamaModel, index: int) -> np.ndarray:
    row = m.next_logits(row=index)
    assert row is not None
    return row


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
