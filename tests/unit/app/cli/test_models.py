"""``ember models ...`` end to end through ``app.cli.main.main`` against the fake Hub."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests/: the fake Hub and GGUF writer

from fakehub import FakeHub, FakeRepo, fake_hub  # noqa: E402,F401  (fixture)
from gguf_synth import gguf_bytes, llama_metadata, write_gguf  # noqa: E402
from model_repos import GATED, GATED_FILE, TINY, TINY_FILE, model_bytes  # noqa: E402

from app.cli.main import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:  # noqa: F811
    fake_hub.add(FakeRepo(TINY, {TINY_FILE: model_bytes(1), "README.md": b"x"}, downloads=9))
    fake_hub.add(FakeRepo(GATED, {GATED_FILE: model_bytes(4, 1 << 16)}, gated=True))
    return fake_hub


def run_json(capsys, *argv: str):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_search_and_files(hub, capsys):
    hits = run_json(capsys, "models", "search", "tiny")
    assert [h["repo_id"] for h in hits] == [TINY]
    assert main(["models", "search", "GGUF", "--sort", "likes"]) == 0
    assert f"{GATED} [gated]" in capsys.readouterr().out
    files = run_json(capsys, "models", "files", TINY)
    assert files["models"][0]["name"] == TINY_FILE and files["models"][0]["quant"] == "Q4_K_M"
    assert files["models"][0]["files"][0]["sha256"] == hub.repos[TINY].sha256(TINY_FILE)


def test_pull_then_list_info_rm(hub, capsys, ember_home):
    model = run_json(capsys, "models", "pull", TINY, "--quant", "Q4_K_M")
    assert model["name"] == "tiny.q4-k-m" and Path(model["path"]).is_file()
    assert Path(model["path"]).is_relative_to(ember_home / "models")
    listed = run_json(capsys, "models", "list")
    assert "tiny.q4-k-m" in [m["name"] for m in listed]
    info = run_json(capsys, "models", "info", "tiny.q4-k-m")
    assert info["metadata"]["llama.block_count"] == 2 and info["metadata"]["tokenizer.ggml.tokens"].startswith(
        "<array of 100")
    assert main(["models", "info", "tiny.q4-k-m"]) == 0
    assert "llama.embedding_length: 64" in capsys.readouterr().out
    # a second pull of a finished model downloads nothing more
    served = hub.served[TINY_FILE]
    assert main(["models", "pull", TINY]) == 0
    assert hub.served[TINY_FILE] == served
    capsys.readouterr()
    assert main(["models", "rm", "tiny.q4-k-m", "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Removing tiny.q4-k-m frees 3.0 MiB.") and "Removed" in out
    assert not Path(model["path"]).exists()


def test_rm_without_yes_refuses_when_not_interactive(tmp_path, capsys, monkeypatch):
    path = write_gguf(tmp_path / "m.Q4_0.gguf")
    assert main(["models", "import", str(path)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["models", "rm", "m.q4-0"]) == 1
    assert "confirm with --yes" in capsys.readouterr().err
    assert path.exists()


def test_import_truncated_is_refused(tmp_path, capsys):
    path = write_gguf(tmp_path / "whole.gguf", data=b"\1" * 4096)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:-1000])
    assert main(["models", "import", str(cut)]) == 1
    err = capsys.readouterr().err
    assert "is truncated" in err and "Download or copy the file again" in err
    assert main(["models", "import", str(tmp_path / "nope.gguf")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_import_copy_and_rm_of_an_outside_file_keeps_it(tmp_path, capsys, ember_home):
    path = write_gguf(tmp_path / "outside.Q8_0.gguf")
    model = run_json(capsys, "models", "import", str(path), "--name", "outside")
    assert model["quantization"] == "Q4_K_M"  # general.file_type 15 in the header wins over the name
    assert model["chat_template"] and model["vocab_fingerprint"]
    removed = run_json(capsys, "models", "rm", "outside", "--yes")
    assert removed["freed"] == 0 and removed["kept"] == [str(path.resolve())] and path.exists()
    copied = run_json(capsys, "models", "import", str(path), "--copy")
    assert Path(copied["path"]).is_relative_to(ember_home / "models")


def test_gated_pull_says_what_to_do(hub, capsys, ember_home):
    assert main(["models", "pull", GATED]) == 1
    err = capsys.readouterr().err
    assert "gated repository" in err and "ember models login" in err
    assert not list((ember_home / "models").rglob("*.gguf"))


def test_gated_pull_with_token_from_the_secret_store(hub, capsys, monkeypatch):
    monkeypatch.setenv("EMBER_SECRET_HF_TOKEN", "hf_good_token")
    assert main(["models", "pull", GATED]) == 0


def test_fit_from_the_hub_and_for_a_library_model(hub, capsys):
    result = run_json(capsys, "models", "fit", TINY, "--ctx", "1024", "--ram", "1", "--no-gpu")
    assert result["fit"] == "cpu" and result["model"] == f"{TINY}/{TINY_FILE}"
    assert result["need"]["kv_cache"] == 2 * 1024 * 2 * 32 * 2
    result = run_json(capsys, "models", "fit", TINY, "--ctx", "1024", "--ram", "1", "--vram", "8")
    assert result["fit"] == "gpu"
    result = run_json(capsys, "models", "fit", TINY, "--ram", "0.1", "--no-gpu")
    assert result["fit"] == "does_not_fit"
    assert main(["models", "fit", "default", "--ram", "8", "--no-gpu"]) == 0
    assert "smollm2-135m-instruct: CPU only" in capsys.readouterr().out
    assert main(["models", "fit", TINY, "--ram", "0.5", "--vram", "0"]) == 0
    assert "CPU only" in capsys.readouterr().out


def test_pull_disk_full_message(hub, capsys, monkeypatch, ember_home):
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda p: usage(1 << 30, 1 << 30, 1 << 20))
    assert main(["models", "pull", TINY]) == 1
    assert "Not enough disk space" in capsys.readouterr().err
    assert not list((ember_home / "models").rglob("*.gguf*")) and not hub.file_gets(TINY_FILE)


def test_pull_killed_with_sigkill_resumes_without_refetching(fake_hub, ember_home):  # noqa: F811
    """The real ``ember models pull`` in a subprocess, killed halfway, then run again."""
    data = gguf_bytes(llama_metadata(), data=os.urandom(4 << 20))
    fake_hub.add(FakeRepo(TINY, {TINY_FILE: data}))
    fake_hub.throttle = 0.004  # about 16 MiB/s
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "app", "models", "pull", TINY]
    partial_dir = ember_home / "models" / ".partial"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(partial_dir.glob("*.part")) if partial_dir.exists() else []
        if parts and parts[0].stat().st_size >= 1 << 20:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = parts[0].stat().st_size
    assert 0 < kept < len(data)
    first_run = fake_hub.served[TINY_FILE]
    fake_hub.throttle = 0
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Resuming" in done.stderr and "sha256 verified" in done.stdout
    assert fake_hub.file_gets(TINY_FILE)[-1] == f"bytes={kept}-"
    assert fake_hub.served[TINY_FILE] - first_run == len(data) - kept
    files = [p for p in (ember_home / "models").rglob("*.gguf")]
    assert len(files) == 1 and files[0].read_bytes() == data
