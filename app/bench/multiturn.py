"""``ember bench decode --multiturn``: time to first token across a long conversation, and when switching back.

Part one runs a 20-turn conversation on one engine and records each turn's time to first token: with the KV cache
of the shared prefix reused, only the new turn is evaluated, so it should stay flat as the history grows. Part two
builds a conversation with a long history, switches to another conversation and back, and times the first token
of the next turn twice: with the saved KV state restored, and re-evaluated from scratch (saved states cleared).
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

from app.core import Ember
from inference.engine import EngineService, ModelSpec
from inference.hardware import physical_cores
from inference.kv_state import StateCache
from inference.llama_model import ContextParams
from inference.sampling import SamplingOptions

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
QUESTIONS = ["Name a fruit.", "Name a colour.", "Name an animal.", "Name a country.", "Name a planet.",
             "Name a tree.", "Name a metal.", "Name a sport.", "Name a river.", "Name a city."]


def bench_multiturn(core: Ember, *, model: str | None = None, turns: int = 20, reply_tokens: int = 32,
                    switch_history: int = 1500, runs: int = 3, threads: int | None = None, n_ctx: int = 4096,
                    flash_attn: bool | None = None,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run both parts and return the figures (see the module docstring).

    ``flash_attn`` None uses the engine setting (and its automatic choice).
    """
    say = progress or (lambda _t: None)
    base = core.model_spec(model)
    n_threads = threads or core.settings.engine.n_threads or physical_cores()
    spec = ModelSpec(base.name, base.path, ContextParams(n_ctx=n_ctx, n_batch=512, n_threads=n_threads,
                                                         n_gpu_layers=core.settings.engine.n_gpu_layers,
                                                         flash_attn=flash_attn if flash_attn is not None
                                                         else core.settings.engine.flash_attn))
    opts = SamplingOptions(temperature=0.0, max_tokens=reply_tokens)
    states = StateCache(None)
    engine = EngineService(name="bench-multiturn", states=states).start()
    try:
        engine.load(spec).wait()
        msgs = [SYSTEM]
        ttft, history = [], []
        for i in range(turns):
            msgs.append({"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]})
            result = engine.chat(msgs, opts).wait()
            msgs.append({"role": "assistant", "content": result.text})
            ttft.append(round(result.stats.ttft_ms, 2))
            history.append(result.stats.prompt_tokens)
            say(f"turn {i + 1}: {result.stats.prompt_tokens} prompt tokens, "
                f"{result.stats.cached_tokens} cached, TTFT {result.stats.ttft_ms:.1f} ms")

        long_chat = _long_history(engine, switch_history)
        other = [SYSTEM, {"role": "user", "content": "What is the capital of Italy?"}]
        restore, reeval, switch_tokens = [], [], 0
        for run in range(runs):
            follow_up = long_chat + [{"role": "user", "content": f"Now say it in {run + 3} words."}]
            for mode in ("restore", "reeval"):
                engine.chat(long_chat, SamplingOptions(temperature=0.0, max_tokens=1)).wait()  # A is live
                engine.chat(other, SamplingOptions(temperature=0.0, max_tokens=1)).wait()  # switch away
                if mode == "reeval":
                    states.clear()
                result = engine.chat(follow_up, SamplingOptions(temperature=0.0, max_tokens=1)).wait()
                (restore if mode == "restore" else reeval).append(result.stats.ttft_ms)
                switch_tokens = result.stats.prompt_tokens
            say(f"switch run {run + 1}: restore {restore[-1]:.1f} ms, re-evaluate {reeval[-1]:.1f} ms")
    finally:
        engine.shutdown()

    second, last = ttft[1] if turns > 1 else ttft[0], ttft[-1]
    restore_ms, reeval_ms = statistics.median(restore), statistics.median(reeval)
    return {
        "model": spec.name,
        "threads": n_threads,
        "n_ctx": n_ctx,
        "turns": turns,
        "reply_tokens": reply_tokens,
        "ttft_ms": ttft,
        "prompt_tokens": history,
        "ttft_last_vs_turn2": round(last / second, 3) if second else None,
        "switch_history_tokens": switch_tokens,
        "switch_restore_ms": round(restore_ms, 2),
        "switch_reeval_ms": round(reeval_ms, 2),
        "switch_speedup": round(reeval_ms / restore_ms, 2) if restore_ms else None,
        "flash_attn": flash_attn,
        "command": f"ember bench decode --multiturn --json --turns {turns} --n-ctx {n_ctx}"
                   + (f" --threads {threads}" if threads else "") + (f" --model {model}" if model else "")
                   + ("" if flash_attn is None else f" --flash-attn {'on' if flash_attn else 'off'}"),
    }


def _long_history(engine: EngineService, target_tokens: int) -> list[dict[str, str]]:
    """A conversation whose prompt is about ``target_tokens`` tokens long (measured with the model's tokenizer)."""
    sentence = "Note: the chapter about {} needs a careful review before the Friday meeting. "
    words = ["rivers", "castles", "glaciers", "owls", "bridges", "clocks", "maps", "tea", "bees", "stars"]
    notes = ""
    i = 0
    while True:
        notes += sentence.format(words[i % len(words)])
        i += 1
        if i % 10 == 0:
            n = engine.call(lambda llm, text=notes: len(llm.tokenize(text, add_special=False))).wait()
            if n >= target_tokens:
                break
    return [SYSTEM, {"role": "user", "content": f"My notes: {notes} Summarise them in one sentence."},
            {"role": "assistant", "content": "The notes list chapters to review before Friday."}]


def format_multiturn(r: dict[str, Any]) -> str:
    """The figures as readable lines."""
    return (f"{r['model']}: {r['turns']} turns, {r['threads']} threads\n"
            f"  TTFT per turn (ms): {', '.join(f'{t:.0f}' for t in r['ttft_ms'])}\n"
            f"  last turn vs turn 2: {r['ttft_last_vs_turn2']}x\n"
            f"  switch back to {r['switch_history_tokens']} tokens of history: restored {r['switch_restore_ms']:.1f} ms, "
            f"re-evaluated {r['switch_reeval_ms']:.1f} ms ({r['switch_speedup']}x)\n"
            f"  reproduce: {r['command']}")
