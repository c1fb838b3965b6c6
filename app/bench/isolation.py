"""``ember bench isolation``: how far a model's logits move when the same tokens are evaluated on another path.

For the chat model's file (or ``--model``) and its F16 and Q8_0 requantisations, with flash attention off and on,
:func:`inference.eval_noise.measure_noise` evaluates the same tokens in one batch, token by token, in small chunks,
after another sequence's KV cells, inside batches shared with other sequences and interleaved with another
sequence's decodes, and reports the largest logit, log-probability and top-2 margin difference. This is the
measurement behind the isolation finding (issue 29): on an AMD EPYC the quantised starter moves by about 1.5 in a
logit with flash attention off, the F16 copy by about 0.07, so the greedy text of a quantised model may flip
wherever two tokens are that close, with no other sequence's cells involved.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from app.core import Ember
from inference.eval_noise import measure_noise
from inference.hardware import physical_cores
from inference.llama_model import ContextParams, forced_eval_path
from inference.requantize import requantized_copy


def bench_isolation(core: Ember, *, model: str | None = None, threads: int | None = None, n_ctx: int = 2048,
                    quants: tuple[str, ...] = ("f16", "q8_0"),
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the evaluation noise of the model file and its requantisations, flash attention off and on.

    Returns:
        ``model``, ``threads``, ``forced_path``, ``rows`` (one per file and attention kernel: ``file``,
        ``flash_attn``, ``logit``, ``logprob``, ``margin``, ``worst_path``, ``seconds``), and ``command``.
    """
    spec = core.model_spec(model)
    threads = threads or physical_cores()
    base = ContextParams(n_ctx=n_ctx, n_batch=256, n_threads=threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ember-isolation-") as tmp:
        files = [Path(spec.path)] + [requantized_copy(spec.path, tmp, q, threads=threads) for q in quants]
        for path in files:
            for fa in (False, True):
                t0 = time.perf_counter()
                noise = measure_noise(path, replace(base, flash_attn=fa))
                row = {"file": path.name, "flash_attn": fa, "logit": round(noise.logit, 4),
                       "logprob": round(noise.logprob, 4), "margin": round(noise.margin, 4),
                       "worst_path": noise.worst_path, "seconds": round(time.perf_counter() - t0, 1)}
                rows.append(row)
                if progress is not None:
                    progress(format_row(row))
    forced = forced_eval_path()
    return {"model": spec.name, "threads": threads, "n_ctx": n_ctx,
            "forced_path": {"ubatch": forced.ubatch, "threads": forced.threads}, "rows": rows,
            "command": "ember bench isolation" + (f" --model {model}" if model else "")
                       + (f" --threads {threads}" if threads != physical_cores() else "")}


def format_row(row: dict[str, Any]) -> str:
    """One line of the table."""
    return (f"{row['file']:<48} flash-attn {'on ' if row['flash_attn'] else 'off'}  logit {row['logit']:.3f}  "
            f"logprob {row['logprob']:.3f}  top-2 margin {row['margin']:.3f}  (worst: {row['worst_path']})")


def format_isolation(r: dict[str, Any]) -> str:
    """The readable report."""
    lines = [f"Evaluation noise of {r['model']} ({r['threads']} threads, n_ctx {r['n_ctx']}): the largest difference "
             "when the same tokens are evaluated token by token, in chunks, after or between other sequences' cells "
             "and in batches shared with them, against one batch"]
    lines += [format_row(row) for row in r["rows"]]
    lines.append(f"reproduce: {r['command']}")
    return "\n".join(lines)
