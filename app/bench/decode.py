"""``ember bench decode``: Ember's engine against llama-cpp-python's ``Llama.create_completion``.

Both load the same file with the same context size, batch, threads and flash-attention setting, generate the same
number of tokens greedily from the same prompt, and alternate runs in one process so drift in machine load hits
both alike. Each run starts from an empty KV cache. Decode speed is measured from outside the same way for both:
(tokens after the first) / (time from the first streamed token to the last). The reference runs on the engine's
worker thread too (``engine.call``): on a small CPU a second thread computing with llama.cpp runs several times
slower, which would make both figures wrong.

With ``native`` (a ``llama-bench`` binary built from the same vendored llama.cpp: ``make bench-native``), llama.cpp's
own generation speed (``tg``) on the same file, threads and flash-attention setting is measured too, in its own
process, one run between each pair of the others (llama-bench's default flash attention is "auto", which on a CPU
means on: about 10% faster decoding than Ember's CPU default, off, so it is always given explicitly).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import llama_cpp

from app.core import Ember
from inference.engine import EngineService, ModelSpec
from inference.events import Finished, TokenText
from inference.llama_model import ContextParams, flash_attn_type, forced_eval_path
from inference.hardware import physical_cores
from inference.sampling import SamplingOptions

PROMPT = ("The history of the city of Paris begins in the third century BC, when a Celtic people called the "
          "Parisii settled on an island in the river Seine. Over the following centuries")


def bench_decode(core: Ember, *, model: str | None = None, tokens: int = 128, runs: int = 5,
                 threads: int | None = None, n_ctx: int = 2048, flash_attn: bool | None = None,
                 native: Path | None = None, busy: int = 0, busy_kind: str = "loop",
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time both engines and return the medians and their ratio (see the module docstring).

    Returns:
        ``model``, ``tokens``, ``runs``, ``threads``, ``ember_tok_s`` (measured from outside),
        ``ember_reported_tok_s`` (the engine's own figure, what ``ember chat -v`` prints), ``reference_tok_s``,
        ``ratio``, ``ember_ttft_ms``, ``reference_ttft_ms``, ``same_text`` and the per-run figures. With
        ``busy`` competing processes (``busy_kind``: ``loop``, a plain CPU loop each, or ``llama``, llama.cpp
        decoding on every core), also ``busy``: the same figures while they run, with the reference at every
        fixed thread count (``reference_by_threads``) and its best (``best_fixed``), Ember's thread plan after the
        runs, and ``vs_best_fixed``.
    """
    from llama_cpp import Llama

    say = progress or (lambda _t: None)
    base = core.model_spec(model)
    requested_fa = flash_attn
    if flash_attn is None:  # the engine's own choice, given to both so they run the same kernels
        flash_attn = flash_attn_type(core.settings.engine.flash_attn) == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    n_threads = threads or core.settings.engine.n_threads or physical_cores()
    params = ContextParams(n_ctx=n_ctx, n_batch=512, n_threads=n_threads,
                           n_gpu_layers=core.settings.engine.n_gpu_layers, flash_attn=flash_attn)
    spec = ModelSpec(name=base.name, path=base.path, params=params)
    options = SamplingOptions(temperature=0.0, repeat_penalty=1.0, max_tokens=tokens)

    engine = EngineService(name="bench-engine").start()
    try:
        say(f"loading {spec.name} twice ({n_threads} threads, n_ctx {n_ctx})")
        engine.load(spec).wait()
        forced = forced_eval_path()  # EMBER_UBATCH / EMBER_THREADS reach the reference too: the same kernels
        ref_threads = forced.threads or n_threads
        ref = engine.call(lambda _m: Llama(
            str(spec.path), n_ctx=n_ctx, n_batch=512, n_ubatch=min(forced.ubatch or 512, 512), n_threads=ref_threads,
            n_threads_batch=ref_threads, n_gpu_layers=params.n_gpu_layers, flash_attn=flash_attn,
            verbose=False)).wait()

        reported: list[float] = []  # the engine's own figure, the one `ember chat -v` prints

        def texts(handle: Any) -> Any:
            for ev in handle:
                if isinstance(ev, TokenText):
                    yield ev.text
                elif isinstance(ev, Finished) and ev.stats is not None:
                    reported.append(ev.stats.tokens_per_s)

        def run_ember() -> tuple[float, float, int, str]:
            engine.reset().wait()
            t0 = time.perf_counter()
            return _timed_stream(t0, texts(engine.complete(PROMPT, options)))

        def reference(_model: Any) -> tuple[float, float, int, str]:
            ref.reset()
            t0 = time.perf_counter()
            stream = ref.create_completion(PROMPT, max_tokens=tokens, temperature=0.0, repeat_penalty=1.0,
                                           stream=True)
            return _timed_stream(t0, (chunk["choices"][0]["text"] for chunk in stream))

        def run_reference() -> tuple[float, float, int, str]:
            return engine.call(reference).wait()

        run_ember()  # warm-up: page in weights, build graphs
        run_reference()
        ember_runs, ref_runs = [], []
        native_runs: list[float] = []
        for i in range(runs):
            order = (run_ember, run_reference) if i % 2 == 0 else (run_reference, run_ember)
            for fn in order:
                (ember_runs if fn is run_ember else ref_runs).append(fn())
            if native:
                native_runs.append(_llama_bench(native, spec.path, threads=ref_threads, tokens=tokens,
                                                flash_attn=flash_attn))
            say(f"run {i + 1}/{runs}: ember {ember_runs[-1][1]:.1f} tok/s, reference {ref_runs[-1][1]:.1f} tok/s"
                + (f", native {native_runs[-1]:.1f} tok/s" if native else ""))
        busy_result = None
        if busy:
            busy_result = _busy_runs(engine, ref, spec, runs=runs, threads=n_threads, busy=busy, kind=busy_kind,
                                     run_ember=run_ember, run_reference=run_reference, say=say)
        engine.call(lambda _m: ref.close()).wait()
    finally:
        engine.shutdown()
    native_tg = round(statistics.median(native_runs), 2) if native_runs else None
    # each Ember run against the llama-bench run right after it: steadier than a ratio of medians on a host whose
    # speed drifts during the benchmark
    paired = [e[1] / n for e, n in zip(ember_runs, native_runs) if n > 0]

    ember_tok_s = statistics.median(r[1] for r in ember_runs)
    ref_tok_s = statistics.median(r[1] for r in ref_runs)
    return {
        "model": spec.name,
        "path": str(spec.path),
        "tokens": tokens,
        "generated_tokens": {"ember": ember_runs[-1][2], "reference": ref_runs[-1][2]},
        "runs": runs,
        "threads": n_threads,
        "n_ctx": n_ctx,
        "flash_attn": flash_attn,
        "ember_tok_s": round(ember_tok_s, 2),
        "ember_reported_tok_s": round(statistics.median(reported[1:]), 2) if len(reported) > 1 else None,
        "reference_tok_s": round(ref_tok_s, 2),
        "ratio": round(ember_tok_s / ref_tok_s, 3) if ref_tok_s else None,
        "ember_ttft_ms": round(statistics.median(r[0] for r in ember_runs), 2),
        "reference_ttft_ms": round(statistics.median(r[0] for r in ref_runs), 2),
        "same_text": ember_runs[-1][3] == ref_runs[-1][3],
        "native_tg_tok_s": native_tg,
        "native_ratio": round(ember_tok_s / native_tg, 3) if native_tg else None,
        "native_ratio_paired": round(statistics.median(paired), 3) if paired else None,
        "per_run_tok_s": {"ember": [round(r[1], 2) for r in ember_runs],
                          "reference": [round(r[1], 2) for r in ref_runs], "native": native_runs},
        "busy": busy_result,
        "command": f"ember bench decode --json --tokens {tokens} --runs {runs} --n-ctx {n_ctx}"
                   + (f" --busy {busy} --busy-kind {busy_kind}" if busy else "")
                   + (f" --threads {threads}" if threads else "") + (f" --model {model}" if model else "")
                   + ("" if requested_fa is None else f" --flash-attn {'on' if requested_fa else 'off'}")
                   + (f" --native {native}" if native else ""),
    }


def _busy_runs(engine: EngineService, ref: Any, spec: ModelSpec, *, runs: int, threads: int, busy: int, kind: str,
               run_ember: Callable[[], tuple[float, float, int, str]],
               run_reference: Callable[[], tuple[float, float, int, str]],
               say: Callable[[str], None]) -> dict[str, Any]:
    """Ember and the reference (at every fixed thread count) while ``busy`` competing processes run."""
    ember_runs: list[float] = []
    by_threads: dict[int, list[float]] = {t: [] for t in range(1, threads + 1)}
    with competing(busy, kind, spec.path):
        time.sleep(1.0)  # let them get going
        for i in range(runs):
            ember_runs.append(run_ember()[1])
            for t in by_threads:
                engine.call(lambda _m, t=t: llama_cpp.llama_set_n_threads(ref._ctx.ctx, t, t)).wait()
                by_threads[t].append(run_reference()[1])
            say(f"busy run {i + 1}/{runs}: ember {ember_runs[-1]:.1f} tok/s, reference "
                + ", ".join(f"{t} threads {v[-1]:.1f}" for t, v in by_threads.items()) + " tok/s")
    engine.call(lambda _m: llama_cpp.llama_set_n_threads(ref._ctx.ctx, threads, threads)).wait()
    plan = engine.models()[0].get("threads")
    medians = {t: round(statistics.median(v), 2) for t, v in by_threads.items()}
    best = max(medians, key=lambda t: medians[t])
    ember = round(statistics.median(ember_runs), 2)
    return {"processes": busy, "kind": kind, "ember_tok_s": ember, "ember_runs": [round(r, 2) for r in ember_runs],
            "reference_default_tok_s": medians[threads], "reference_by_threads": medians,
            "best_fixed": {"threads": best, "tok_s": medians[best]},
            "vs_best_fixed": round(ember / medians[best], 3) if medians[best] else None,
            "vs_default": round(ember / medians[threads], 3) if medians[threads] else None, "ember_threads": plan}


BUSY_LOOP = "while True:\n    pass\n"
BUSY_LLAMA = ("import sys, llama_cpp\n"
              "m = llama_cpp.Llama(sys.argv[1], n_ctx=512, n_threads=int(sys.argv[2]), verbose=False)\n"
              "while True:\n"
              "    m.reset()\n"
              "    for _ in m.create_completion('Once upon a time', max_tokens=256, temperature=0.8, stream=True):\n"
              "        pass\n")


@contextlib.contextmanager
def competing(n: int, kind: str, model: Path) -> Iterator[None]:
    """Run ``n`` competing processes while the block runs: a plain CPU loop each (``loop``), or llama.cpp
    decoding the same model on every core (``llama``), as another local AI app would."""
    code = BUSY_LOOP if kind == "loop" else BUSY_LLAMA
    args = [] if kind == "loop" else [str(model), str(physical_cores())]
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _llama_bench(binary: Path, model: Path, *, threads: int, tokens: int, flash_attn: bool) -> float:
    """llama.cpp's own generation speed (one ``llama-bench -n tokens`` run after its warm-up, tokens/s)."""
    env = {**os.environ, "LD_LIBRARY_PATH": f"{binary.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    out = subprocess.run([str(binary), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(tokens),
                          "-fa", "1" if flash_attn else "0", "-r", "1", "-o", "json"], capture_output=True,
                         text=True, env=env, timeout=600, check=True).stdout
    rows = [r for r in json.loads(out) if r.get("n_gen")]
    return round(float(rows[0]["avg_ts"]), 2)


def _timed_stream(t0: float, texts) -> tuple[float, float, int, str]:
    """(TTFT ms, tok/s after the first token, pieces, text) for a stream of per-token texts."""
    first = last = None
    n = 0
    parts = []
    for text in texts:
        now = time.perf_counter()
        if first is None:
            first = now
        last = now
        n += 1
        parts.append(text)
    if first is None or last is None:
        return 0.0, 0.0, 0, ""
    rate = (n - 1) / (last - first) if n > 1 and last > first else 0.0
    return (first - t0) * 1000, rate, n, "".join(parts)


def format_decode(r: dict[str, Any]) -> str:
    """The result as a few readable lines."""
    return (f"{r['model']}: {r['tokens']} tokens x {r['runs']} runs, {r['threads']} threads\n"
            f"  ember     {r['ember_tok_s']:8.2f} tok/s   TTFT {r['ember_ttft_ms']:7.1f} ms"
            f"   (engine's own figure, as `ember chat -v`: {r.get('ember_reported_tok_s')} tok/s)\n"
            f"  reference {r['reference_tok_s']:8.2f} tok/s   TTFT {r['reference_ttft_ms']:7.1f} ms\n"
            f"  ratio {r['ratio']}  same text: {r['same_text']}\n"
            + (f"  native llama-bench tg {r['native_tg_tok_s']:.2f} tok/s, ratio {r['native_ratio']} "
               f"(median of run-by-run ratios {r.get('native_ratio_paired')})\n"
               if r.get("native_tg_tok_s") else "")
            + (_format_busy(r["busy"]) if r.get("busy") else "")
            + f"  reproduce: {r['command']}")


def _format_busy(b: dict[str, Any]) -> str:
    refs = ", ".join(f"{t} threads {v:.1f}" for t, v in b["reference_by_threads"].items())
    return (f"  with {b['processes']} competing process(es) ({b['kind']}): ember {b['ember_tok_s']:.2f} tok/s "
            f"(threads now {b['ember_threads']}); reference {refs} tok/s; best fixed "
            f"{b['best_fixed']['threads']} threads: ember/best {b['vs_best_fixed']}, ember/default {b['vs_default']}\n")
