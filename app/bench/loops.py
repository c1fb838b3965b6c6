"""``ember bench loops``: how many replies loop to ``max_tokens``, before and after the loop check.

Every prompt is answered twice per sampling mode through the engine (one :class:`EngineService`, one worker
thread, the chat model with its own template and the default system prompt):

- **before**: ``stop_loops`` off. The loop detector runs in observe-only mode on the reply's tokens afterwards, to
  classify it: a reply that reached ``max_tokens`` and that the detector would have cut is one that "looped to the
  limit".
- **after**: ``stop_loops`` on, everything else the same.

Two sampling modes: temperature 0, and the default sampling (``SamplingOptions()``: temperature 0.7, top-k 40,
top-p 0.95, min-p 0.05) with a fixed seed per prompt. Every reply starts from an empty KV cache, so both runs of a
prompt evaluate exactly the same batches and draw the same numbers: the loop check only decides where a reply
ends, so a reply that does not loop must be token-identical before and after, and a looping one must be the
"before" reply cut right after the token where the detector fired. The benchmark checks both, token by token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from app.core import Ember
from app.settings import ChatSettings
from inference.chat_prompt import fit_chat_prompt
from inference.engine import EngineService, ModelSpec
from inference.events import GenerationStats
from inference.generate import generate
from inference.llama_model import LlamaModel
from inference.repetition import first_loop
from inference.sampling import SamplingOptions

# Short prompts of many kinds: questions, instructions, code, lists, stories. The France question is the one the
# starter model loops on at temperature 0 on some CPUs (issue 13).
PROMPTS: list[str] = [
    "What is the capital of France?",
    "What is the capital of Germany?",
    "What is the capital of Japan?",
    "Who wrote Romeo and Juliet?",
    "How many legs does a spider have?",
    "What is the boiling point of water in Celsius?",
    "Why is the sky blue?",
    "What is photosynthesis?",
    "Explain what a black hole is in two sentences.",
    "What is the difference between weather and climate?",
    "How does a rainbow form?",
    "What is 12 times 7?",
    "If I have 3 apples and eat one, how many are left?",
    "Convert 5 kilometers to meters.",
    "List five fruits.",
    "List the days of the week.",
    "Count from 1 to 20.",
    "Name three primary colors.",
    "Give me a list of ten animals.",
    "Write the numbers from 10 down to 1.",
    "Write a Python function that returns the sum of a list of numbers.",
    "Write a Python function to check whether a number is prime.",
    "Write a JavaScript function that reverses a string.",
    "Write a SQL query that selects all users older than 30.",
    "Explain what a for loop does in Python.",
    "Write a bash command that counts the lines in a file.",
    "Write a haiku about autumn.",
    "Write a short poem about the sea.",
    "Tell me a short story about a dragon.",
    "Tell me a joke.",
    "Describe a cat in one sentence.",
    "Write a short email asking my manager for a day off.",
    "Give me three tips for better sleep.",
    "How do I make a cup of tea?",
    "What should I pack for a beach holiday?",
    "Summarize the plot of Cinderella.",
    "Translate 'good morning' into Spanish.",
    "What is the opposite of hot?",
    "Spell the word 'necessary' backwards.",
    "Is a tomato a fruit or a vegetable?",
    "What are the planets of the solar system?",
    "Who painted the Mona Lisa?",
    "What is the largest ocean on Earth?",
    "Write a recipe for pancakes.",
]


@dataclass(frozen=True)
class Reply:
    """One generated reply: its tokens (EOG left out), text and stats."""

    tokens: list[int]
    text: str
    stats: GenerationStats


def bench_loops(core: Ember, *, model: str | None = None, prompts: Sequence[str] | None = None,
                tokens: int = 256, threads: int | None = None, n_ctx: int = 2048,
                progress: Callable[[str], None] | None = None, command: str = "ember bench loops"
                ) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and return one JSON-ready dict.

    Args:
        core: the composition root (library, settings).
        model: library model or .gguf path (default: the chat model).
        prompts: the user messages (default: :data:`PROMPTS`).
        tokens: ``max_tokens`` of every reply.
        threads: CPU threads (default: the engine setting, else the physical cores).
        n_ctx: context length.
        progress: receives one line per prompt.
        command: the command line that reproduces the figures (printed with them).

    Returns:
        ``model``, ``tokens``, ``prompts``, per mode (``modes``: ``temperature_0``, ``defaults``) the counts
        before and after, and whether every reply matched; ``identical`` overall; per prompt ``items``.
    """
    say = progress or (lambda _t: None)
    texts = list(prompts or PROMPTS)
    base = core.model_spec(model)
    params = replace(base.params, n_ctx=n_ctx, n_threads=threads or base.params.n_threads)
    spec = ModelSpec(name=base.name, path=base.path, params=params)  # plain decoding, no saved states
    system = ChatSettings().system_prompt
    modes = {"temperature_0": lambda i: SamplingOptions(temperature=0.0, max_tokens=tokens),
             "defaults": lambda i: SamplingOptions(seed=1000 + i, max_tokens=tokens)}
    result: dict[str, Any] = {"model": spec.name, "path": str(spec.path), "tokens": tokens, "prompts": len(texts),
                              "n_ctx": n_ctx, "system_prompt": system, "modes": {}, "items": []}
    t0 = time.perf_counter()
    engine = EngineService(name="bench-loops").start()
    try:
        say(f"loading {spec.name}")
        engine.load(spec).wait()
        totals = {name: _Totals() for name in modes}
        for i, text in enumerate(texts):
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": text}]
            item: dict[str, Any] = {"prompt": text}
            line = []
            for name, make in modes.items():
                options = make(i)
                before = _reply(engine, msgs, options.model_copy(update={"stop_loops": False}))
                after = _reply(engine, msgs, options.model_copy(update={"stop_loops": True}))
                figures = totals[name].add(before, after)
                item[name] = figures
                line.append(f"{name} {figures['before']}->{figures['after']}"
                            + ("" if figures["as_expected"] else " MISMATCH"))
            result["items"].append(item)
            say(f"{i + 1}/{len(texts)} {text[:40]!r}: " + ", ".join(line))
        result["modes"] = {name: t.summary() for name, t in totals.items()}
    finally:
        engine.shutdown()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["identical"] = all(m["as_expected"] == m["replies"] for m in result["modes"].values())
    result["command"] = command
    return result


def _reply(engine: EngineService, messages: list[dict[str, str]], options: SamplingOptions) -> Reply:
    """One reply on the engine's worker thread, from an empty KV cache, with its token ids."""

    def work(llm: LlamaModel | None) -> Reply:
        assert llm is not None
        llm.clear()  # the same prompt batches every time: no cached prefix, no single-token re-evaluation
        prompt = fit_chat_prompt(llm, messages, options.max_tokens)
        ids: list[int] = []
        parts: list[str] = []
        stats = generate(llm, prompt.tokens, options, should_stop=lambda: False, on_text=parts.append,
                         keep=prompt.keep, on_token=ids.append)
        return Reply(ids[:stats.completion_tokens], "".join(parts), stats)

    return engine.call(work).wait()


class _Totals:
    """Counts of one sampling mode over all prompts."""

    def __init__(self) -> None:
        self.replies = 0
        self.looped_to_limit = 0  # before: reached max_tokens, and the detector would have cut it
        self.looped_then_stopped = 0  # before: looped for a while, then ended by itself
        self.length_not_looping = 0  # before: reached max_tokens without a verbatim loop
        self.after_repetition = 0
        self.after_length = 0
        self.not_looping = 0
        self.not_looping_identical = 0
        self.looping_cut_as_observed = 0
        self.as_expected = 0
        self.tokens_before = 0
        self.tokens_after = 0
        self.seconds_before = 0.0  # generation time (the replies' total_ms)
        self.seconds_after = 0.0

    def add(self, before: Reply, after: Reply) -> dict[str, Any]:
        self.replies += 1
        cut = first_loop(before.tokens)
        if cut is None:
            self.not_looping += 1
            ok = after.tokens == before.tokens and after.stats.finish_reason == before.stats.finish_reason
            self.not_looping_identical += ok
            if before.stats.finish_reason == "length":
                self.length_not_looping += 1
        else:
            if before.stats.finish_reason == "length":
                self.looped_to_limit += 1
            else:
                self.looped_then_stopped += 1
            ok = after.tokens == before.tokens[:cut + 1] and after.stats.finish_reason == "repetition"
            self.looping_cut_as_observed += ok
        self.as_expected += ok
        self.after_repetition += after.stats.finish_reason == "repetition"
        self.after_length += after.stats.finish_reason == "length"
        self.tokens_before += len(before.tokens)
        self.tokens_after += len(after.tokens)
        self.seconds_before += before.stats.total_ms / 1000
        self.seconds_after += after.stats.total_ms / 1000
        out: dict[str, Any] = {"before": before.stats.finish_reason, "after": after.stats.finish_reason,
                               "tokens_before": len(before.tokens), "tokens_after": len(after.tokens),
                               "loop_at": cut, "as_expected": ok}
        if cut is not None:
            out["text_after"] = after.text
        return out

    def summary(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in vars(self).items()}


def format_loops(r: dict[str, Any]) -> str:
    """A readable summary of :func:`bench_loops`'s result, ending with the command that reproduces it."""
    lines = [f"loop check on {r['prompts']} prompts, {r['model']}, max_tokens {r['tokens']} "
             f"(system prompt {r['system_prompt']!r}, every reply from an empty cache)"]
    for name, m in r["modes"].items():
        label = "temperature 0" if name == "temperature_0" else "default sampling (fixed seeds)"
        lines += [
            f"  {label}:",
            f"    before (stop_loops off): {m['looped_to_limit']}/{m['replies']} replies looped to max_tokens "
            f"({m['looped_then_stopped']} more looped and then stopped; {m['length_not_looping']} reached "
            f"max_tokens without a verbatim loop)",
            f"    after  (stop_loops on):  {m['after_repetition']}/{m['replies']} ended with 'repetition', "
            f"{m['after_length']} reached max_tokens",
            f"    non-looping replies identical before/after: {m['not_looping_identical']}/{m['not_looping']}; "
            f"looping replies cut exactly where observed: {m['looping_cut_as_observed']}/"
            f"{m['replies'] - m['not_looping']}",
            f"    tokens generated: {m['tokens_before']} before, {m['tokens_after']} after "
            f"({m['seconds_before']:.0f} s and {m['seconds_after']:.0f} s of generation)",
        ]
    france = next((it for it in r["items"] if it["prompt"] == "What is the capital of France?"), None)
    if france is not None:
        t0 = france["temperature_0"]
        lines.append(f"  'What is the capital of France?' at temperature 0: before {t0['before']} "
                     f"({t0['tokens_before']} tokens), after {t0['after']} ({t0['tokens_after']} tokens)")
    lines.append("  every reply as expected" if r["identical"] else "  SOME REPLIES DIFFER (see --json items)")
    lines.append(f"  {r['seconds']:.0f} s in all")
    lines.append(f"reproduce: {r['command']}")
    return "\n".join(lines)
