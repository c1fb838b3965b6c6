"""The bundle's smoke test gives up on a silent server, and ``ember bench api`` says how to reproduce it."""

from __future__ import annotations

import importlib.util
import shlex
import stat
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

from app.core import Ember
from app.paths import Paths

ROOT = Path(__file__).resolve().parents[2]


def _smoke_module() -> ModuleType:
    """packaging/smoke_test.py (loaded by path: ``packaging`` is also the name of a PyPI package)."""
    spec = importlib.util.spec_from_file_location("ember_smoke_test", ROOT / "packaging" / "smoke_test.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_serve_step_gives_up_on_a_server_that_prints_nothing(tmp_path: Path) -> None:
    exe = tmp_path / "ember"
    exe.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")  # hangs silently, as a stuck server
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    smoke = _smoke_module()
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="no API token printed within 1 s"):
        smoke._serve_one_request(exe, startup_timeout=1)
    assert time.monotonic() - t0 < 10, "the deadline did not fire while the server was silent"


@pytest.fixture
def core(ember_home: Path) -> Iterator[Ember]:
    c = Ember.open(Paths(ember_home))
    yield c
    c.close()


def test_bench_api_prints_the_command_that_reproduces_it(core: Ember, monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from app.bench import api as bench_api
    from app.cli.main import build_parser

    figures = {"ttft_median_ms": 10.0, "ttft_max_ms": 12.0, "client_tokens_per_s": 50.0,
               "total_tokens_per_s": 80.0}
    monkeypatch.setattr(bench_api, "_measure",
                        lambda *args, counts, **kwargs: {str(n): dict(figures) for n in counts})
    fake = lambda *args, **kwargs: contextlib.nullcontext(("http://127.0.0.1:9", "m"))  # noqa: E731
    monkeypatch.setattr(bench_api, "_llama_cpp_server", fake)
    monkeypatch.setattr(bench_api, "_ember_serve", fake)
    monkeypatch.setattr(bench_api, "_native_server", fake)
    result = bench_api.bench_api(core, model="default", tokens=8, runs=1, clients=[2, 1], threads=1, n_ctx=1024,
                                 llama_server=Path("/opt/llama-server"))
    command = result["command"]
    assert command.startswith("ember bench api --json")
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.model, args.tokens, args.runs, args.clients, args.threads, args.n_ctx, args.json,
            args.llama_server) == ("default", 8, 1, [1, 2], 1, 1024, True, Path("/opt/llama-server"))
    assert set(result["servers"]) == {"ember", "llama_cpp_server", "llama_server"}
    assert result["ratios"]["llama_server"]["2"]["total_tokens_per_s"] == 1.0
    assert f"reproduce: {command}" in bench_api.format_api(result)
    defaults = bench_api.bench_api(core, tokens=8)["command"]
    assert "--threads" not in defaults and "--model" not in defaults, "options left out stay left out"
