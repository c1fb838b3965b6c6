"""``ember bench api``: Ember's HTTP API against reference servers on the same model file, 1..N streaming clients.

Each server runs in its own process (``ember serve`` for Ember, so the benchmark's clients never share its
interpreter) with the same model, context length, threads and parallel slots, and they are measured one after the
other (never at the same time: they would share the CPU). The references: llama-cpp-python's server (one request at
a time) and, with ``llama_server``, llama.cpp's native ``llama-server -np N`` (``make bench-native`` builds it from
the llama.cpp that llama-cpp-python vendors). Clients use the ``openai`` client, stream, and each asks its own
question, so prompt caches help every server alike. Per client count: median and max time to first token, median
per-client tokens/s (after the first token), total tokens/s (all tokens over the wall time of the round).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import llama_cpp

from app.core import Ember
from inference.hardware import physical_cores
from inference.llama_model import flash_attn_type
from storage.errors import EmberError

QUESTIONS = ["Write a short story about a lighthouse keeper and a storm.",
             "Write a short story about a baker who wakes up before dawn.",
             "Write a short story about a cat that learns to open doors.",
             "Write a short story about two friends lost in a forest.",
             "Write a short story about a robot that tends a garden.",
             "Write a short story about a girl who collects old maps.",
             "Write a short story about a fisherman and a silver fish.",
             "Write a short story about a train that never stops."]


class BenchError(EmberError, RuntimeError):
    """The benchmark could not run (a server is missing or did not start)."""


def bench_api(core: Ember, *, model: str | None = None, tokens: int = 128, runs: int = 3,
              clients: Sequence[int] | int = (1, 4), threads: int | None = None, n_ctx: int = 8192,
              llama_server: Path | None = None, flash_attn: bool | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every server and return one JSON-ready dict with their figures and Ember/reference ratios.

    Every server runs with the same flash-attention setting (``flash_attn``; None: Ember's own choice): llama.cpp's
    servers default to "auto", which on a CPU means on, while Ember's CPU default is off.

    Raises:
        BenchError: a server is not installed or did not start.
    """
    say = progress or (lambda text: None)
    counts = sorted(set([clients] if isinstance(clients, int) else clients))
    command = api_command(model=model, tokens=tokens, runs=runs, clients=counts, threads=threads, n_ctx=n_ctx,
                          llama_server=llama_server, flash_attn=flash_attn)
    threads = threads or physical_cores()
    fa = (flash_attn if flash_attn is not None else
          flash_attn_type(core.settings.engine.flash_attn) == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED)
    parallel = max(counts)
    spec = core.model_spec(model)
    result: dict[str, Any] = {"model": spec.name, "path": str(spec.path), "tokens": tokens, "runs": runs,
                              "clients": counts, "threads": threads, "n_ctx": n_ctx, "flash_attn": fa,
                              "command": command,
                              "servers": {}}
    servers: list[tuple[str, Callable[[], contextlib.AbstractContextManager[tuple[str, str]]]]] = [
        ("ember", lambda: _ember_serve(spec.path, threads=threads, n_ctx=n_ctx, parallel=parallel, flash_attn=fa)),
        ("llama_cpp_server", lambda: _llama_cpp_server(str(spec.path), threads=threads, n_ctx=n_ctx,
                                                       flash_attn=fa))]
    if llama_server is not None:
        servers.append(("llama_server", lambda: _native_server(llama_server, spec.path, threads=threads,
                                                               n_ctx=n_ctx, parallel=parallel, flash_attn=fa)))
    for name, start in servers:
        say(f"{name} on {spec.name} ...")
        with start() as (address, model_name):
            result["servers"][name] = _measure(address, model_name, tokens=tokens, runs=runs, counts=counts,
                                               progress=lambda t, n=name: say(f"  {n}: {t}"))
    ember = result["servers"]["ember"]
    result["ratios"] = {ref: {str(n): _ratios(ember[str(n)], figures[str(n)]) for n in counts}
                        for ref, figures in result["servers"].items() if ref != "ember"}
    return result


def api_command(*, model: str | None, tokens: int, runs: int, clients: Sequence[int], threads: int | None,
                n_ctx: int, llama_server: Path | None = None, flash_attn: bool | None = None) -> str:
    """The ``ember bench api`` command line that repeats a run with these options."""
    return (f"ember bench api --json --tokens {tokens} --runs {runs} --clients {' '.join(map(str, clients))}"
            f" --n-ctx {n_ctx}" + (f" --threads {threads}" if threads else "")
            + (f" --model {shlex.quote(model)}" if model else "")
            + (f" --llama-server {shlex.quote(str(llama_server))}" if llama_server else "")
            + ("" if flash_attn is None else f" --flash-attn {'on' if flash_attn else 'off'}"))


def format_api(result: dict[str, Any]) -> str:
    """A readable table of :func:`bench_api`'s result."""
    lines = [f"model {result['model']}, {result['tokens']} tokens per reply, {result['threads']} threads, "
             f"median of {result['runs']} rounds",
             f"{'server':18}{'clients':>8}{'TTFT med':>10}{'TTFT max':>10}{'tok/s each':>12}{'tok/s total':>13}"]
    for name, figures in result["servers"].items():
        for n in result["clients"]:
            f = figures[str(n)]
            lines.append(f"{name:18}{n:>8}{f['ttft_median_ms']:>10.0f}{f['ttft_max_ms']:>10.0f}"
                         f"{f['client_tokens_per_s']:>12.1f}{f['total_tokens_per_s']:>13.1f}")
    for ref, by_count in result["ratios"].items():
        for n, r in by_count.items():
            lines.append(f"Ember / {ref}, {n} clients: total tok/s x{r['total_tokens_per_s']}, "
                         f"max TTFT x{r['ttft_max']}, per-client tok/s x{r['client_tokens_per_s']}")
    lines.append(f"reproduce: {result['command']}")
    return "\n".join(lines)


def _ratios(ember: dict[str, float], ref: dict[str, float]) -> dict[str, float]:
    def ratio(key: str) -> float:
        return round(ember[key] / ref[key], 3) if ref[key] else float("nan")

    # total and per-client tok/s: above 1, Ember streams faster; TTFT: below 1, Ember answers sooner
    return {"total_tokens_per_s": ratio("total_tokens_per_s"), "client_tokens_per_s": ratio("client_tokens_per_s"),
            "ttft_median": ratio("ttft_median_ms"), "ttft_max": ratio("ttft_max_ms")}


def _stream_once(client: Any, model: str, question: str, tokens: int) -> tuple[float, float, int]:
    """One streaming chat request: (seconds to first token, seconds first to last token, tokens)."""
    t0 = time.perf_counter()
    first = last = None
    n = 0
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                            max_tokens=tokens, temperature=0, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
            n += 1
    if first is None or last is None:
        raise BenchError("The server streamed no tokens.")
    return first - t0, last - first, n


def _round(address: str, model: str, n: int, tokens: int) -> tuple[list[tuple[float, float, int]], float]:
    """``n`` clients at once, each with its own question: their figures and the round's wall time."""
    from openai import OpenAI

    gate = threading.Barrier(n + 1)
    out: list[tuple[float, float, int] | BaseException] = [BenchError("no result")] * n

    def one(i: int) -> None:
        client = OpenAI(base_url=f"{address}/v1", api_key="bench", max_retries=0, timeout=600)
        try:
            gate.wait()
            out[i] = _stream_once(client, model, QUESTIONS[i % len(QUESTIONS)], tokens)
        except BaseException as exc:  # noqa: BLE001 - reported below
            out[i] = exc
        finally:
            client.close()

    workers = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for w in workers:
        w.start()
    gate.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    for r in out:
        if isinstance(r, BaseException):
            raise BenchError(f"A benchmark client failed: {r}") from r
    return out, wall  # type: ignore[return-value]


def _measure(address: str, model: str, *, tokens: int, runs: int, counts: Sequence[int],
             progress: Callable[[str], None]) -> dict[str, dict[str, float]]:
    _round(address, model, max(counts), 8)  # warm-up: graphs built, every question's prompt seen once
    out: dict[str, dict[str, float]] = {}
    for n in counts:
        rounds = [_round(address, model, n, tokens) for _ in range(runs)]
        ttfts = [[c[0] * 1000 for c in clients] for clients, _ in rounds]
        rates = [(c[2] - 1) / c[1] for clients, _ in rounds for c in clients if c[1] > 0]
        totals = [sum(c[2] for c in clients) / wall for clients, wall in rounds]
        out[str(n)] = {"ttft_median_ms": round(statistics.median(statistics.median(t) for t in ttfts), 1),
                       "ttft_max_ms": round(statistics.median(max(t) for t in ttfts), 1),
                       "client_tokens_per_s": round(statistics.median(rates), 2),
                       "total_tokens_per_s": round(statistics.median(totals), 2)}
        progress(f"{n} clients: {out[str(n)]}")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _process(cmd: list[str], probe: str, *, env: dict[str, str] | None = None, what: str) -> Iterator[None]:
    """Run a server process until the ``probe`` URL answers 200; stop it on exit."""
    import httpx

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise BenchError(f"{what} exited with code {proc.returncode} before it was ready.")
            try:
                if httpx.get(probe, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"{what} did not start within 180 s.")
            time.sleep(0.2)
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def _ember_serve(path: Path, *, threads: int, n_ctx: int, parallel: int,
                 flash_attn: bool) -> Iterator[tuple[str, str]]:
    """``ember serve`` in a fresh data folder with the benchmark's threads, context, flash attention and parallel
    slots."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="ember-bench-") as home:
        settings = {"engine": {"n_threads": threads, "n_ctx": n_ctx, "flash_attn": flash_attn},
                    "api": {"parallel": parallel},
                    "chat": {"model": str(path)}}
        Path(home, "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        env = {**os.environ, "EMBER_HOME": home}
        cmd = [sys.executable, "-m", "app", "serve", "--no-auth", "--port", str(port), "--model", str(path)]
        with _process(cmd, f"http://127.0.0.1:{port}/health", env=env, what="ember serve"):
            yield f"http://127.0.0.1:{port}", "default"


@contextlib.contextmanager
def _llama_cpp_server(path: str, *, threads: int, n_ctx: int, flash_attn: bool) -> Iterator[tuple[str, str]]:
    """llama-cpp-python's OpenAI server in a subprocess, on a free loopback port."""
    try:
        import llama_cpp.server.app  # noqa: F401  (only whether it is installed)
    except ImportError as exc:
        raise BenchError("llama-cpp-python's server is not installed (pip install "
                         f"'llama-cpp-python[server]'): {exc}") from exc
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", path, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
           "--flash_attn", str(flash_attn), "--interrupt_requests", "False", "--verbose", "False"]
    with _process(cmd, f"http://127.0.0.1:{port}/v1/models", what="llama-cpp-python's server"):
        yield f"http://127.0.0.1:{port}", path


@contextlib.contextmanager
def _native_server(binary: Path, path: Path, *, threads: int, n_ctx: int, parallel: int,
                   flash_attn: bool) -> Iterator[tuple[str, str]]:
    """llama.cpp's ``llama-server -np parallel`` with a unified KV cache of ``n_ctx`` cells, as Ember's."""
    if not binary.is_file():
        raise BenchError(f"There is no llama-server at {binary}: build it with `make bench-native`.")
    port = _free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": f"{binary.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    cmd = [str(binary), "-m", str(path), "--host", "127.0.0.1", "--port", str(port), "-c", str(n_ctx),
           "-t", str(threads), "-tb", str(threads), "-np", str(parallel), "--kv-unified", "--no-webui",
           "-fa", "on" if flash_attn else "off"]
    with _process(cmd, f"http://127.0.0.1:{port}/health", env=env, what="llama-server"):
        yield f"http://127.0.0.1:{port}", path.name
