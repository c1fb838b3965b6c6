"""How far a model's logits move when the same tokens are evaluated on another path: the evaluation noise.

llama.cpp gives the same tokens slightly different logits when it evaluates them in another batch shape (one batch,
token by token, a batch shared with other sequences) or in other KV cells (a unified cache where other sequences'
cells come first or sit between): without flash attention the attention's sums run in another order, and a
quantised model's 8-bit activations turn those ~0.05 differences into ~1.5 (measured on an AMD EPYC: F16 0.07,
Q8_0 and Q4_1 about 1.5 in a logit, 0.7 in a top-2 margin). So a reply's tokens may differ from another run's
wherever two tokens are that close, and that is noise, not another sequence's cells leaking in: a wrong cell moves
logits by several units even on F16. :func:`measure_noise` takes each path on a context of its own and reports the
largest difference; the tests take it as their tie tolerance and ``ember bench isolation`` prints it per model
type and attention kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from inference.llama_model import ContextParams, LlamaModel

NOISE_FLOOR = 1e-3  # a tolerance never below this, for a path that measured bit-identical

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


def log_softmax(row: np.ndarray) -> np.ndarray:
    """Log-probabilities of a logits row (float64)."""
    r = row.astype(np.float64)
    peak = r.max()
    return r - (peak + np.log(np.exp(r - peak).sum()))


def measure_noise(path: Path | str, params: ContextParams) -> Noise:
    """The evaluation noise of the model file ``path`` with context ``params`` on this machine, measured on a
    context of its own (three sequences).

    Each prompt of :data:`NOISE_PROMPTS` is evaluated in one batch and greedily continued token by token (the
    reference); then the same tokens are evaluated on other paths (the prompt token by token, in chunks of 8, after
    another sequence's cells fill the front of the cache, in chunks of 64 inside batches with tokens of two other
    sequences, and interleaved with another sequence's decodes), and every step's logits row is compared.
    """
    m = LlamaModel(path, replace(params, n_seq=3, n_park=0))
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


def _forced_rows(m: LlamaModel, prompt: list[int], tokens: list[int] | None,
                 fill: Callable[[], None]) -> tuple[list[np.ndarray], list[int]]:
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


def _paths(m: LlamaModel, prompt: list[int], other: list[int]) -> dict[str, Callable[[], None]]:
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
