"""The ``ember`` command end to end, in subprocesses, with the real starter model and a real SQLite file."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference.llama_model import ContextParams, LlamaModel
from tests.greedy import CAPITAL_QUESTION, robust_capital
from tests.helpers import starter_path

EMBER = [sys.executable, "-m", "app"]


def run_ember(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*EMBER, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def db_rows(home: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(home / "ember.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_version():
    out = run_ember("--version")
    assert out.returncode == 0 and out.stdout.startswith("ember ")


def test_one_shot_answer_is_printed_and_stored(ember_home):
    reference = LlamaModel(starter_path(), ContextParams(n_ctx=2048))
    try:  # the whole greedy answer, to its end, wins every step by a wide margin: any CPU gives the same text
        expected = robust_capital(reference, 64, whole=True)
    finally:
        reference.close()
    out = run_ember("chat", "--temperature", "0", CAPITAL_QUESTION)
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout and out.stdout.strip() == expected.text.strip()
    assert out.stderr == ""
    convs = db_rows(ember_home, "SELECT id, title, model FROM conversations")
    assert [(c[0], c[2]) for c in convs] == [(1, "smollm2-135m-instruct")]
    assert CAPITAL_QUESTION.startswith(convs[0][1].rstrip("…"))  # titled after the question
    msgs = db_rows(ember_home, "SELECT role, content, stats FROM messages WHERE conversation_id = 1 ORDER BY id")
    assert [m[0] for m in msgs] == ["user", "assistant"]
    assert msgs[0][1] == CAPITAL_QUESTION
    assert msgs[1][1].strip() == out.stdout.strip()
    stats = json.loads(msgs[1][2])
    assert stats["finish_reason"] == "stop" and stats["completion_tokens"] > 0


def test_continuing_a_conversation_keeps_history(ember_home):
    assert run_ember("chat", "--temperature", "0", "--max-tokens", "8", "My name is Ada.").returncode == 0
    out = run_ember("chat", "--conversation", "1", "--temperature", "0", "--max-tokens", "8", "-v", "Hi again")
    assert out.returncode == 0, out.stderr
    assert "cached" in out.stderr  # --verbose prints stats
    assert db_rows(ember_home, "SELECT count(*) FROM messages WHERE conversation_id = 1") == [(4,)]


def test_a_continued_conversation_uses_its_own_sampling_with_flags_on_top_for_the_turn(ember_home):
    """One rule with the desktop: the conversation's stored sampling, explicit flags override for that turn only."""
    assert run_ember("chat", "--temperature", "0", "--max-tokens", "4", "Count from one to twenty.").returncode == 0
    assert run_ember("chat", "--conversation", "1", "Go on.").returncode == 0  # stored: max_tokens 4
    assert run_ember("chat", "--conversation", "1", "--max-tokens", "1", "And again.").returncode == 0
    stats = [json.loads(s) for (s,) in db_rows(ember_home, "SELECT stats FROM messages WHERE role = 'assistant' "
                                                              "ORDER BY id")]
    # upper bounds only (a reply may end sooner): the settings' 512 tokens would have let "Go on." run long
    assert stats[1]["completion_tokens"] <= 4 and stats[2]["completion_tokens"] <= 1
    settings = json.loads(db_rows(ember_home, "SELECT settings FROM conversations")[0][0])
    assert settings["sampling"]["max_tokens"] == 4  # the flag did not change what the conversation stores


@pytest.mark.parametrize("kind", ["truncated", "not-gguf", "missing"])
def test_bad_model_file_is_one_line_error(tmp_path, kind):
    path = tmp_path / "model.gguf"
    if kind == "truncated":
        src = starter_path()
        with src.open("rb") as f:
            path.write_bytes(f.read(src.stat().st_size - 1000))
    elif kind == "not-gguf":
        path.write_text("<html>Not found</html>")
    out = run_ember("chat", "--model", str(path), "hello")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ember: error: ")
    expected = {"truncated": "truncated", "not-gguf": "not a GGUF", "missing": "does not exist"}[kind]
    assert expected in lines[0]


def test_unknown_model_name_lists_installed():
    out = run_ember("chat", "--model", "llama-9000", "hi")
    assert out.returncode == 1 and "smollm2-135m-instruct" in out.stderr and "Traceback" not in out.stderr


def test_sigkill_while_streaming_keeps_the_partial_reply(ember_home):
    proc = subprocess.Popen(
        [*EMBER, "chat", "--temperature", "0.8", "--seed", "5", "--max-tokens", "4000",
         "Write a very long story about a lighthouse keeper."],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
    )
    printed = b""
    deadline = time.monotonic() + 60
    while len(printed) < 400 and time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 256)
        if not chunk:
            break
        printed += chunk
    time.sleep(0.8)  # more than one flush interval after the text we saw
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert db_rows(ember_home, "PRAGMA integrity_check") == [("ok",)]
    rows = db_rows(ember_home, "SELECT content, stats FROM messages WHERE role = 'assistant'")
    assert len(rows) == 1
    content, stats = rows[0]
    text = printed.decode("utf-8", errors="ignore")
    assert len(content) >= len(text.strip()) * 0.9  # all but the last moments of what was shown
    assert content[:200] == text[:200]
    assert json.loads(stats)["finish_reason"] == "streaming"  # it never finished, and says so


def test_doctor_json():
    out = run_ember("doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert "CPU" in report["llama_cpp"]["backends"]
    # llama.cpp's system info line names the CPU features its kernels use ("CPU : SSE3 = 1 | AVX2 = 1 | ..."),
    # which tells machines apart in a bug report (issue 13)
    cpu = report["llama_cpp"]["system_info"].split("CPU : ", 1)[1]
    assert re.search(r"\b[A-Z][A-Z0-9_]+ = 1\b", cpu), report["llama_cpp"]["system_info"]
    assert isinstance(report["llama_cpp"]["gpu_offload"], bool)
    assert report["paths"]["home"] == os.environ["EMBER_HOME"]
    assert report["keyring"]["backend"]
    assert report["cpu"]["physical_cores"] >= 1 and report["memory"]["total_bytes"] > 0
    chat = report["models"][0]  # what loading the chat model would get on this machine now
    assert chat["slot"] == "chat" and chat["path"].endswith(".gguf") and "threads" in chat["plan"]
    forced = os.environ.get("EMBER_THREADS")
    assert ("forced by EMBER_THREADS" in chat["threads"] if forced else
            chat["threads"].startswith(("up to", "1, fixed"))), chat["threads"]


def test_bench_decode_json_has_the_figures():
    out = run_ember("bench", "decode", "--json", "--runs", "1", "--tokens", "16")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("model", "tokens", "ember_tok_s", "reference_tok_s", "ratio", "ember_ttft_ms",
                "reference_ttft_ms"):
        assert key in result
    assert result["ember_tok_s"] > 0 and result["reference_tok_s"] > 0 and result["tokens"] == 16
    assert result["same_text"] is True


def test_bench_decode_busy_measures_under_a_competing_process():
    out = run_ember("bench", "decode", "--json", "--runs", "1", "--tokens", "16", "--busy", "1")
    assert out.returncode == 0, out.stderr
    busy = json.loads(out.stdout)["busy"]
    assert busy["processes"] == 1 and busy["kind"] == "loop" and busy["ember_tok_s"] > 0
    assert set(busy["reference_by_threads"]) == {str(t) for t in range(1, json.loads(out.stdout)["threads"] + 1)}
    assert busy["best_fixed"]["tok_s"] == max(busy["reference_by_threads"].values())
    assert busy["ember_threads"]["in_use"] >= 1
