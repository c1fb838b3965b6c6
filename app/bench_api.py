"""``ember bench api``: Ember's HTTP API against llama-cpp-python's own server, on the same model file.

Both servers get the same model, context length and threads and are measured one after the other (never at the
same time: they would share the CPU). Figures per server: time to first token and tokens/s for one streaming
client, and total tokens/s for several concurrent streaming clients. Tokens are counted as streamed content chunks
(one per token on both servers).
"""

from __future__ import annotations

import json
import shlex
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import httpx

from app.core import Ember
from inference.hardware import physical_cores
from storage.errors import EmberError

PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


class BenchError(EmberError, RuntimeError):
    """The benchmark could not run (the reference server is missing or did not start)."""


def bench_api(core: Ember, *, model: str | None = None, tokens: int = 64, runs: int = 3, clients: int = 4,
              threads: int | None = None, n_ctx: int = 2048,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure both servers and return one JSON-ready dict with their figures and Ember/reference ratios.

    Raises:
        BenchError: llama-cpp-python's server is not installed or did not start.
    """
    from app.api.server import ApiServer

    say = progress or (lambda text: None)
    command = api_command(model=model, tokens=tokens, runs=runs, clients=clients, threads=threads, n_ctx=n_ctx)
    threads = threads or physical_cores()
    core.settings.engine.n_threads = threads  # in memory only: both servers use the same threads and context
    core.settings.engine.n_ctx = n_ctx
    spec = core.model_spec(model)
    result: dict[str, Any] = {"model": spec.name, "path": str(spec.path), "tokens": tokens, "runs": runs,
                              "clients": clients, "threads": threads, "n_ctx": n_ctx, "command": command}
    say(f"Ember API on {spec.name} ...")
    with ApiServer(core, port=0, token="bench") as server:
        result["ember"] = _measure(server.address, spec.name, {"Authorization": "Bearer bench"}, tokens=tokens,
                                   runs=runs, clients=clients)
    say("llama-cpp-python server ...")
    with _llama_cpp_server(str(spec.path), threads=threads, n_ctx=n_ctx) as address:
        result["llama_cpp_server"] = _measure(address, spec.name, {}, tokens=tokens, runs=runs, clients=clients)
    e, r = result["ember"], result["llama_cpp_server"]
    result["ratios"] = {
        "ttft": _ratio(e["ttft_ms"], r["ttft_ms"]),  # below 1: Ember answers sooner
        "tokens_per_s": _ratio(e["tokens_per_s"], r["tokens_per_s"]),  # above 1: Ember streams faster
        "concurrent_tokens_per_s": _ratio(e["concurrent_tokens_per_s"], r["concurrent_tokens_per_s"]),
    }
    return result


def api_command(*, model: str | None, tokens: int, runs: int, clients: int, threads: int | None,
                n_ctx: int) -> str:
    """The ``ember bench api`` command line that repeats a run with these options."""
    return (f"ember bench api --json --tokens {tokens} --runs {runs} --clients {clients} --n-ctx {n_ctx}"
            + (f" --threads {threads}" if threads else "") + (f" --model {shlex.quote(model)}" if model else ""))


def format_api(result: dict[str, Any]) -> str:
    """A readable table of :func:`bench_api`'s result."""
    e, r, q = result["ember"], result["llama_cpp_server"], result["ratios"]
    return "\n".join([
        f"model {result['model']}, {result['tokens']} tokens, {result['threads']} threads, "
        f"{result['clients']} concurrent clients",
        f"{'':28}{'Ember':>10}{'llama-cpp':>12}{'ratio':>8}",
        f"{'time to first token (ms)':28}{e['ttft_ms']:>10.1f}{r['ttft_ms']:>12.1f}{q['ttft']:>8.2f}",
        f"{'tokens/s, one client':28}{e['tokens_per_s']:>10.1f}{r['tokens_per_s']:>12.1f}{q['tokens_per_s']:>8.2f}",
        f"{'tokens/s, all clients':28}{e['concurrent_tokens_per_s']:>10.1f}"
        f"{r['concurrent_tokens_per_s']:>12.1f}{q['concurrent_tokens_per_s']:>8.2f}",
        f"reproduce: {result['command']}",
    ])


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def _stream_once(client: httpx.Client, model: str, tokens: int) -> tuple[float, float, int]:
    """One streaming chat request: (seconds to first token, seconds first to last token, tokens)."""
    body = {"model": model, "messages": PROMPT, "max_tokens": tokens, "temperature": 0, "stream": True}
    t0 = time.perf_counter()
    first = last = None
    n = 0
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                last = time.perf_counter()
                first = first or last
                n += 1
    if first is None:
        raise BenchError("The server streamed no tokens.")
    return first - t0, last - first, n


def _measure(address: str, model: str, headers: dict[str, str], *, tokens: int, runs: int,
             clients: int) -> dict[str, float]:
    with httpx.Client(base_url=address, headers=headers, timeout=300) as client:
        _stream_once(client, model, 4)  # warm-up: model loaded, prompt cached the same way for both
        singles = [_stream_once(client, model, tokens) for _ in range(runs)]
    ttft = statistics.median(s[0] * 1000 for s in singles)
    rate = statistics.median((s[2] - 1) / s[1] for s in singles if s[1] > 0)

    def one(_: int) -> int:
        with httpx.Client(base_url=address, headers=headers, timeout=300) as c:
            return _stream_once(c, model, tokens)[2]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(one, range(clients)))
    wall = time.perf_counter() - t0
    return {"ttft_ms": round(ttft, 2), "tokens_per_s": round(rate, 2),
            "concurrent_tokens_per_s": round(total / wall, 2), "concurrent_tokens": total,
            "concurrent_wall_s": round(wall, 3)}


class _llama_cpp_server:
    """llama-cpp-python's OpenAI server in a subprocess, on a free loopback port."""

    def __init__(self, path: str, *, threads: int, n_ctx: int) -> None:
        self.path, self.threads, self.n_ctx = path, threads, n_ctx
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        try:
            import llama_cpp.server.app  # noqa: F401
        except ImportError as exc:
            raise BenchError("llama-cpp-python's server is not installed (pip install "
                             f"'llama-cpp-python[server]'): {exc}") from exc
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", self.path, "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
               "--n_threads_batch", str(self.threads), "--interrupt_requests", "False", "--verbose", "False"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        address = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"llama-cpp-python's server exited with code {self.proc.returncode}.")
            try:
                if httpx.get(address + "/v1/models", timeout=2).status_code == 200:
                    return address
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise BenchError("llama-cpp-python's server did not start within 120 s.")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
