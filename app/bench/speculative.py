"""``ember bench speculative``: plain against speculative decoding on the same target, same prompts, in one process.

Both run greedily (temperature 0) on the same loaded target, alternating per prompt so drift in machine load hits
both alike; every run starts from an empty KV cache. Speed is (tokens after the first) / (time from the first token
to the end of the reply). Modes:
- ``lookup``: prompt lookup on the target (default target: the chat model);
- ``draft``: a draft model; by default the Q4_1 starter drafts for a Q8_0 requantisation of itself, made once in the
  cache folder (same vocabulary, so a valid pair).
``verify_cost`` is the measured cost of one decode call with K tokens (logits at every position) relative to one
token; with acceptance a and free drafts, the best possible speedup is max over K of E(K) / verify_cost(K + 1) with
E(K) = (1 - a^(K+1)) / (1 - a), reported per suite as ``speedup_cap``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from app.core import Ember
from inference.chat_template import ChatTemplate
from inference.draft_compat import check_compatible, read_vocab
from inference.draft_control import DraftController
from inference.drafters import Drafter, LookupDrafter, ModelDrafter
from inference.generate import generate
from inference.hardware import physical_cores
from inference.llama_model import ContextParams, LlamaModel
from inference.requantize import requantized_copy
from inference.sampling import SamplingOptions
from inference.spec_runtime import new_controller
from inference.speculative import generate_speculative
from storage.errors import EmberError

_CODE = '''def calc(items, rate):
    subtotal = 0
    for item in items:
        subtotal += item["price"] * item["qty"]
    tax = subtotal * rate
    return subtotal + tax


def report(items, rate):
    total = calc(items, rate)
    print("Items:", len(items))
    print("Total:", round(total, 2))
    return total
'''
_TEXT = ("The library opens at nine in the morning and closes at six in the evening. Visitors can borrow up to "
         "five books at a time, and each loan lasts three weeks. Late returns cost ten cents per day. The reading "
         "room on the second floor is quiet, and phones must be switched off there.")
_TYPOS = ("The libary opens at nine in the morning and closes at six in the evning. Visiters can borow up to five "
          "books at a time, and each loan lasts three weeks. Late returns cost ten cents per day.")

SUITES: dict[str, list[str]] = {
    "copy-heavy": [
        "Rename the function calc to compute_total everywhere in this code. Reply with the whole code only.\n\n"
        f"```python\n{_CODE}```",
        "Rewrite this code so that report also prints the tax rate. Reply with the whole code only.\n\n"
        f"```python\n{_CODE}```",
        f"Fix the typos in this paragraph and reply with the corrected paragraph only:\n\n{_TYPOS}",
        f"Quote the following text exactly, word for word, and nothing else:\n\n{_TEXT}",
    ],
    "free-form": [
        "Write a short poem about the sea at night.",
        "Explain in a few sentences how photosynthesis works.",
        "Tell a short story about a robot who learns to paint.",
    ],
}
VERIFY_SIZES = (1, 2, 4, 8, 16)


def load_prompts(path: Path | str) -> dict[str, list[str]]:
    """Prompts from a JSONL file (one ``{"prompt": ...}`` per line) as a single suite named after the file.

    Raises:
        EmberError: the file cannot be read or a line is not such an object.
    """
    path = Path(path)
    prompts = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EmberError(f"Cannot read the prompts file {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            prompts.append(str(obj["prompt"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise EmberError(f"{path}:{n} is not a JSON object with a \"prompt\" ({exc}).") from exc
    if not prompts:
        raise EmberError(f"{path} holds no prompts.")
    return {path.stem: prompts}


def bench_speculative(core: Ember, *, model: str | None = None, draft: str | None = None, lookup: bool = False,
                      prompts_file: str | None = None, tokens: int = 128, threads: int | None = None,
                      n_ctx: int = 2048, target_quant: str = "q8_0", max_draft: int = 8,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and return one JSON-ready dict.

    With neither ``draft`` nor ``lookup`` both modes run: lookup on the chat model, and the starter drafting for
    its ``target_quant`` requantisation.
    """
    say = progress or (lambda _t: None)
    suites = load_prompts(prompts_file) if prompts_file else SUITES
    n_threads = threads or core.settings.engine.n_threads or physical_cores()
    params = ContextParams(n_ctx=n_ctx, n_batch=512, n_threads=n_threads,
                           n_gpu_layers=core.settings.engine.n_gpu_layers)
    options = SamplingOptions(temperature=0.0, repeat_penalty=1.0, max_tokens=tokens)
    result: dict[str, Any] = {"tokens": tokens, "threads": n_threads, "n_ctx": n_ctx, "max_draft": max_draft,
                              "temperature": 0.0, "modes": {}}
    modes = ["lookup"] if lookup else ["draft"] if draft else ["lookup", "draft"]
    for mode in modes:
        if mode == "lookup":
            target_model = core.library.resolve(model or core.settings.chat.model)
            target_path, draft_path = target_model.path, None
        else:
            draft_model = core.library.resolve(draft or core.settings.chat.model)
            draft_path = draft_model.path
            if model:
                target_path = core.library.resolve(model).path
            else:
                say(f"requantising {draft_path.name} to {target_quant} for the target")
                target_path = requantized_copy(draft_path, core.paths.cache / "bench", target_quant,
                                               threads=n_threads)
            check_compatible(read_vocab(target_path), read_vocab(draft_path))
        say(f"{mode}: target {target_path.name}" + (f", draft {draft_path.name}" if draft_path else ""))
        result["modes"][mode] = _bench_mode(mode, target_path, draft_path, suites, params, options, max_draft, say)
    cmd = f"ember bench speculative --json --tokens {tokens} --n-ctx {n_ctx} --max-draft {max_draft}"
    cmd += (" --lookup" if lookup else "") + (f" --draft {draft}" if draft else "")
    cmd += (f" --model {model}" if model else "") + (f" --prompts {prompts_file}" if prompts_file else "")
    cmd += (f" --threads {threads}" if threads else "") + (f" --target-quant {target_quant}"
                                                             if target_quant != "q8_0" else "")
    result["command"] = cmd
    return result


def _bench_mode(mode: str, target_path: Path, draft_path: Path | None, suites: dict[str, list[str]],
                params: ContextParams, options: SamplingOptions, max_draft: int,
                say: Callable[[str], None]) -> dict[str, Any]:
    target = LlamaModel(target_path, params)
    drafter_model = LlamaModel(draft_path, params) if draft_path else None
    try:
        template = ChatTemplate(target.chat_template(), bos_token=target.token_text(target.bos_id),
                                eos_token=target.token_text(target.eos_id), strip_bos=target.add_bos)

        def drafter() -> Drafter:
            return ModelDrafter(drafter_model) if drafter_model is not None else LookupDrafter()

        verify = _verify_cost(target)
        out: dict[str, Any] = {"target": str(target_path), "draft": str(draft_path) if draft_path else None,
                               "verify_cost": verify, "suites": {}}
        prompts = {name: [target.tokenize(template.render([{"role": "user", "content": p}]), add_special=True)
                          for p in texts] for name, texts in suites.items()}
        ctl = new_controller(draft_path, target_path, max_draft=max_draft)
        _run_plain(target, prompts[next(iter(prompts))][0], options)  # warm-up
        _run_spec(target, drafter(), prompts[next(iter(prompts))][0], options, ctl)
        for name, plist in prompts.items():
            plain_runs, spec_runs = [], []
            for i, prompt in enumerate(plist):
                order = ("plain", "spec") if i % 2 == 0 else ("spec", "plain")
                for which in order:
                    if which == "plain":
                        plain_runs.append(_run_plain(target, prompt, options))
                    else:
                        spec_runs.append(_run_spec(target, drafter(), prompt, options, ctl))
                say(f"{mode} {name} {i + 1}/{len(plist)}: plain {plain_runs[-1]['tok_s']:.1f} tok/s, "
                    f"speculative {spec_runs[-1]['tok_s']:.1f} tok/s, acceptance {spec_runs[-1]['acceptance']}")
            fixed = []
            if mode == "draft":  # without adaptivity: what drafting costs and how much is accepted
                fixed_ctl = DraftController(max_draft=4, adaptive=False)
                fixed = [_run_spec(target, drafter(), p, options, fixed_ctl) for p in plist]
            out["suites"][name] = _summarise(plain_runs, spec_runs, fixed, verify)
        out["controller"] = ctl.stats().__dict__
        return out
    finally:
        target.close()
        if drafter_model is not None:
            drafter_model.close()


def _run_plain(model: LlamaModel, prompt: list[int], options: SamplingOptions) -> dict[str, Any]:
    model.clear()
    parts: list[str] = []
    s = generate(model, prompt, options, should_stop=lambda: False, on_text=parts.append)
    return _run_figures(s, "".join(parts))


def _run_spec(model: LlamaModel, drafter: Drafter, prompt: list[int], options: SamplingOptions,
              ctl: DraftController) -> dict[str, Any]:
    model.clear()
    if isinstance(drafter, ModelDrafter):
        drafter.model.clear()
    parts: list[str] = []
    if ctl.adaptive and not ctl.could_pay():  # as the engine does: drafting cannot pay here, so decode plainly
        return {**_run_plain(model, prompt, options), "drafted": 0, "accepted": 0, "acceptance": None,
                "draft_ms": 0.0, "verify_ms": 0.0}
    s = generate_speculative(model, drafter, prompt, options, should_stop=lambda: False, on_text=parts.append,
                             controller=ctl)
    fig = _run_figures(s, "".join(parts))
    fig.update(drafted=s.drafted or 0, accepted=s.accepted or 0, acceptance=s.acceptance_rate,
               draft_ms=s.draft_ms, verify_ms=s.verify_ms)
    return fig


def _run_figures(s: Any, text: str) -> dict[str, Any]:
    decode_s = max((s.total_ms - s.ttft_ms) / 1000, 1e-9)
    n = max(s.completion_tokens - 1, 0)
    return {"tokens": s.completion_tokens, "decode_s": decode_s, "tok_s": n / decode_s, "text": text}


def _summarise(plain: list[dict], spec: list[dict], fixed: list[dict], verify: dict[str, float]) -> dict[str, Any]:
    def rate(runs: list[dict]) -> float:
        n = sum(max(r["tokens"] - 1, 0) for r in runs)
        t = sum(r["decode_s"] for r in runs)
        return n / t if t > 0 else 0.0

    def acceptance(runs: list[dict]) -> float | None:
        drafted = sum(r["drafted"] for r in runs)
        return round(sum(r["accepted"] for r in runs) / drafted, 4) if drafted else None

    p, s = rate(plain), rate(spec)
    acc = acceptance(spec)
    out = {
        "prompts": len(plain),
        "plain_tok_s": round(p, 2),
        "spec_tok_s": round(s, 2),
        "speedup": round(s / p, 3) if p else None,
        # per prompt, plain and speculative run back to back: robust to drift in machine load
        "paired_speedup_median": round(statistics.median(b["tok_s"] / a["tok_s"] for a, b in zip(plain, spec)
                                                         if a["tok_s"] > 0), 3) if plain else None,
        "acceptance": acc,
        "drafted": sum(r["drafted"] for r in spec),
        "accepted": sum(r["accepted"] for r in spec),
        "identical_outputs": sum(a["text"] == b["text"] for a, b in zip(plain, spec)),
        "speedup_cap": _cap(acc, verify) if acc is not None else None,
    }
    if fixed:
        fr = rate(fixed)
        out["fixed_k4"] = {"spec_tok_s": round(fr, 2), "speedup": round(fr / p, 3) if p else None,
                           "acceptance": acceptance(fixed),
                           "identical_outputs": sum(a["text"] == b["text"] for a, b in zip(plain, fixed))}
    return out


def _cap(a: float, verify: dict[str, float]) -> float:
    """The best speedup with free drafts at acceptance ``a`` under the measured verify costs."""
    sizes = sorted(int(k) for k in verify)
    best = 1.0
    for k in range(1, sizes[-1]):
        n = k + 1
        lo = max(s for s in sizes if s <= n)
        hi = min(s for s in sizes if s >= n)
        cost = verify[str(lo)] if lo == hi else (verify[str(lo)] * (hi - n) + verify[str(hi)] * (n - lo)) / (hi - lo)
        tokens = k + 1 if a >= 1 else (1 - a ** (k + 1)) / (1 - a)
        best = max(best, tokens / cost)
    return round(best, 3)


def _verify_cost(model: LlamaModel, *, reps: int = 12) -> dict[str, float]:
    """Median time of one decode call of K tokens with logits at every position, relative to K = 1."""
    base = model.tokenize("The history of the city begins long ago, when people first settled by the river.",
                          add_special=True)
    model.clear()
    model.ingest_prompt(base)
    filler = base[1:] * 4
    times: dict[int, list[float]] = {k: [] for k in VERIFY_SIZES}
    for _ in range(reps):
        for k in VERIFY_SIZES:
            n0 = len(model.tokens)
            t = time.perf_counter()
            model.decode(filler[:k], logits=[True] * k)
            times[k].append(time.perf_counter() - t)
            model.truncate(n0)
    one = statistics.median(times[1])
    return {str(k): round(statistics.median(v) / one, 2) for k, v in times.items()}


def format_speculative(r: dict[str, Any]) -> str:
    """The result as readable lines."""
    lines = []
    for mode, m in r["modes"].items():
        lines.append(f"{mode}: target {Path(m['target']).name}" + (f", draft {Path(m['draft']).name}"
                                                                   if m["draft"] else ""))
        lines.append("  verify cost (x one token): " + ", ".join(f"K={k} {v}" for k, v in m["verify_cost"].items()))
        for name, s in m["suites"].items():
            lines.append(f"  {name:<11} plain {s['plain_tok_s']:7.1f} tok/s  speculative {s['spec_tok_s']:7.1f} "
                         f"tok/s  speedup {s['speedup']}  acceptance {s['acceptance']}  identical "
                         f"{s['identical_outputs']}/{s['prompts']}  cap {s['speedup_cap']}")
            if "fixed_k4" in s:
                f = s["fixed_k4"]
                lines.append(f"  {'':<11} fixed K=4: {f['spec_tok_s']:.1f} tok/s, speedup {f['speedup']}, "
                             f"acceptance {f['acceptance']}")
    lines.append(f"reproduce: {r['command']}")
    return "\n".join(lines)
