"""``ember bench routing``: how well the router's escalation score picks out the small model's wrong answers.

Each prompt of a JSONL dataset (``{"prompt": ..., "answers": [...], "split": "train"|"test"}``) is answered by the
small model at temperature 0; an answer is correct when any listed answer appears in the reply as a whole word,
case-insensitive. The router scores the prompt as in ``auto`` (prompt features and the glimpse) and as in
``cascade`` (plus the confidence over the whole answer). Figures are reported on the ``test`` split; thresholds are
calibrated on the scores of the ``train`` split, which is also the only data ``--fit`` fits on. ``--dump FILE``
writes every item's label and per-token statistics, from which ``python -m app.bench.fit_routing`` refits the shipped
weights of :mod:`inference.route_weights`.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from app.core import Ember
from inference.engine import ModelSpec
from inference.llama_model import ContextParams
from app.route_agreement import sample_agreement
from app.bench.routing_online import format_online, simulate_online
from inference.hidden_probe import HiddenProbe, file_sha256, find_probe, load_probe
from inference.route_signals import GREEDY, Probe, route_signals
from inference.router import ScoreModel, auroc, auroc_interval, calibrate_threshold, caught_at_rate
from inference import route_weights
from storage.errors import EmberError

DEFAULT_DATASET = Path(__file__).parent.parent / "resources" / "routing_questions.jsonl"
RATES = (0.1, 0.2, 0.3, 0.5)


class DatasetError(EmberError, ValueError):
    """The routing dataset file is missing or malformed."""


@dataclass
class Item:
    """One scored prompt."""

    prompt: str
    answers: list[str]
    split: str
    category: str
    reply: str = ""
    correct: bool = False
    signals: dict[str, float] | None = None
    decision_ms: float = 0.0
    token_ms: float = 0.0
    steps: list[tuple[float, float, float]] | None = None  # (entropy, logprob, margin) of each answer token
    hidden: list[float] | None = None  # the last hidden state at the prompt's last token
    hidden_next: list[float] | None = None  # and after the first answer token
    opening: str = ""  # the greedy answer's first agreement.TOKENS tokens
    samples: list[str] | None = None  # the sampled continuations (cascade's agreement signal)
    hidden_ms: float = 0.0
    agreement_ms: float = 0.0


def load_dataset(path: Path | str) -> list[Item]:
    """Read a routing dataset (one JSON object per line with ``prompt`` and ``answers``).

    Raises:
        DatasetError: the file is missing or a line is not a valid item.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"Cannot read the dataset {path} ({exc.strerror or exc}).") from exc
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            answers = [str(a) for a in obj["answers"]]
            prompt = str(obj["prompt"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}:{n} is not a {{\"prompt\": ..., \"answers\": [...]}} line ({exc}).") from exc
        if not answers or not prompt:
            raise DatasetError(f"{path}:{n} has an empty prompt or no answers.")
        items.append(Item(prompt, answers, str(obj.get("split", "all")), str(obj.get("category", ""))))
    if not items:
        raise DatasetError(f"The dataset {path} has no items.")
    return items


def question_messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    """A routing question as the chat messages the router sees (the system prompt first, when there is one)."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def is_correct(reply: str, answers: Sequence[str]) -> bool:
    """True when any answer appears in ``reply`` as a whole word (case-insensitive)."""
    return any(re.search(r"(?<!\w)" + re.escape(a) + r"(?!\w)", reply, re.I) for a in answers)


def _score_items(core: Ember, spec: ModelSpec, items: list[Item], *, system: str | None, glimpse_tokens: int,
                 max_tokens: int, agreement: bool, progress: Callable[[str], None] | None) -> None:
    """Answer and score every item with the router's own engine jobs (the real glimpse with the hidden states, then
    the whole answer; with ``agreement`` the cascade's sampled continuations, batched by the engine)."""
    core.engine.load(spec).wait()
    probe_ = find_probe(spec.path)
    for i, item in enumerate(items):
        msgs = question_messages(item.prompt, system)

        options = GREEDY.model_copy(update={"max_tokens": max_tokens})
        scored: list[float] = []

        def keep(g: Probe | None, item: Item = item) -> bool:  # the router's own scoring, on the engine thread
            hp = probe_.logit_of(g.hidden, g.hidden_next) if probe_ is not None and g is not None else None
            route_weights.shipped_model("auto", probe=hp is not None).score(
                route_signals(item.prompt, g.steps if g else None, hidden_probe=hp))
            scored.append(time.perf_counter())
            return False

        t0 = time.perf_counter()
        g = core.engine.glimpse(msgs, options, model=spec, n_tokens=glimpse_tokens, hidden=("prompt", "first"),
                                keep=keep).wait().probe  # both states, for the dump
        if g is None:
            raise DatasetError(f"The prompt of item {i + 1} does not fit a {spec.params.n_ctx}-token context.")
        hp = probe_.logit_of(g.hidden, g.hidden_next) if probe_ is not None else None
        # the prefill is reused by the answer; the prompt's hidden state, its token evaluated on its own, is not
        # (counted when the probe reads it)
        paid = g.hidden_ms if probe_ is None or "prompt" in probe_.inputs else 0.0
        decided = (scored[0] - t0) * 1000 - g.prompt_ms + paid
        answered = core.engine.probe_reply(msgs, options, model=spec).wait()
        a = answered.probe
        item.reply = a.text
        item.correct = is_correct(a.text, item.answers)
        item.steps = [(s.entropy, s.logprob, s.margin) for s in a.steps]
        item.hidden = None if g.hidden is None else [round(float(v), 5) for v in g.hidden]
        item.hidden_next = None if g.hidden_next is None else [round(float(v), 5) for v in g.hidden_next]
        item.hidden_ms = paid
        item.opening = answered.opening
        item.signals = route_signals(item.prompt, g.steps, a.steps, hidden_probe=hp)
        # + what the answer had to evaluate again after the rollback (nothing once the logits are put back)
        item.decision_ms = decided + a.prompt_ms
        calls = a.timings.get("decode_calls", 0)
        item.token_ms = a.timings["decode_calls_ms"] / calls if calls else 0.0
        if agreement:
            agreed = sample_agreement(core.engine, msgs, GREEDY, spec, item.opening)
            item.samples, item.agreement_ms = agreed.samples, agreed.ms
            assert item.signals is not None
            item.signals.update(agreed.features)
        if progress and (i + 1) % 20 == 0:
            progress(f"{i + 1}/{len(items)} answered")


def _metrics(items: list[Item], scores: list[float], cal_scores: list[float]) -> dict[str, Any]:
    wrong = [not it.correct for it in items]
    err = sum(wrong) / len(items)
    out: dict[str, Any] = {
        "auroc": _r(auroc(scores, wrong)),
        "auroc_ci95": [_r(x) for x in (auroc_interval(scores, wrong) or (None, None))],
        "caught_at_budget": {str(b): _r(caught_at_rate(scores, wrong, b)) for b in RATES},
        "escalation_rate_at_budget": {},
        "caught_at_calibrated_budget": {},
    }
    for b in RATES:
        thr = calibrate_threshold(cal_scores, b, min_samples=1)
        esc = [s >= thr for s in scores]
        out["escalation_rate_at_budget"][str(b)] = _r(sum(esc) / len(esc))
        out["caught_at_calibrated_budget"][str(b)] = _r(sum(e and w for e, w in zip(esc, wrong)) / max(sum(wrong), 1))
    out["routed_accuracy_oracle_large"] = {
        str(b): _r(1 - err + err * (out["caught_at_budget"][str(b)] or 0.0)) for b in RATES}
    return out


def bench_routing(core: Ember, *, dataset: Path | str | None = None, model: str | None = None,
                  split: str = "test", fit: bool = False, threads: int | None = None, n_ctx: int = 2048,
                  glimpse_tokens: int = 2, max_tokens: int = 48, dump: Path | str | None = None,
                  agreement: bool = True, online: bool = False, replay: Sequence[Path | str] = (),
                  progress: Callable[[str], None] | None = None, command: str = "") -> dict[str, Any]:
    """Score every item, report on ``split`` (``test``, ``train`` or ``all``); ``fit`` refits the score models on
    the ``train`` split first and reports with them. ``dump`` writes every item's label and signals to a JSONL
    file (:func:`dump_items`), the input of ``python -m app.bench.fit_routing``. ``agreement`` samples the
    cascade's continuations too (:mod:`app.route_agreement`). ``online`` replays the reported items as a stream
    of user labels through the online learner (:mod:`app.bench.routing_online`). ``replay`` takes the items,
    labels and signals from earlier ``--dump`` files instead of answering again (no timings then).

    Raises:
        DatasetError: unreadable dataset, or the split has no items.
    """
    base = core.model_spec(model)
    spec = ModelSpec(base.name, base.path, ContextParams(n_ctx=n_ctx, n_threads=threads, n_batch=512))
    system = core.settings.chat.system_prompt or None
    t0 = time.perf_counter()
    if replay:
        items = replay_items(replay, glimpse_tokens=glimpse_tokens)
    else:
        items = load_dataset(dataset or DEFAULT_DATASET)
        _score_items(core, spec, items, system=system, glimpse_tokens=glimpse_tokens, max_tokens=max_tokens,
                     agreement=agreement, progress=progress)
    elapsed = time.perf_counter() - t0
    has_probe = all("hidden_probe" in (it.signals or {}) for it in items)
    if dump:
        dump_items(items, dump, threads=threads, model_path=spec.path)
    train = [it for it in items if it.split == "train"]
    report = [it for it in items if split == "all" or it.split == split]
    if not report:
        raise DatasetError(f"The dataset has no items in the {split!r} split (use --split all).")
    cal = train if train and split != "train" else report

    auto_model: ScoreModel = route_weights.shipped_model("auto", probe=has_probe)
    cascade_model: ScoreModel = route_weights.shipped_model("cascade", probe=has_probe)
    result: dict[str, Any] = {}
    if fit:
        if not train:
            raise DatasetError("--fit needs items marked \"split\": \"train\" in the dataset.")
        from app.bench.fit_routing import choose_and_fit  # the same procedure as python -m app.bench.fit_routing

        rows = [(it.prompt, it.signals or {}, not it.correct) for it in train]
        auto_model, auto_l2, _ = choose_and_fit(rows, route_weights.AUTO_FEATURES)
        cascade_model, cascade_l2, _ = choose_and_fit(rows, route_weights.CASCADE_FEATURES)
        result["fitted"] = {"auto": {**auto_model.as_dict(), "l2": auto_l2},
                            "cascade": {**cascade_model.as_dict(), "l2": cascade_l2}}

    def scores(m: ScoreModel, its: list[Item]) -> list[float]:
        return [m.score(it.signals or {}) for it in its]

    wrong = [not it.correct for it in report]
    err = sum(wrong) / len(report)
    auto = _metrics(report, scores(auto_model, report), scores(auto_model, cal))
    cascade = _metrics(report, scores(cascade_model, report), scores(cascade_model, cal))
    plain = route_weights.shipped_model("auto", probe=False)  # today's signals: what a model without a probe gets
    without_probe = _metrics(report, scores(plain, report), scores(plain, cal))
    decision = [it.decision_ms for it in report]
    token = [it.token_ms for it in report if it.token_ms > 0]
    result.update({
        "items": len(report),
        "split": split,
        "calibrated_on": "train" if cal is train else split,
        "model": spec.name,
        "small_accuracy": _r(1 - err),
        "auroc": auto["auroc"],
        "auroc_ci95": auto["auroc_ci95"],
        "caught_at_budget": auto["caught_at_budget"],
        "perfect_router_at_budget": {str(b): _r(min(1.0, b / err) if err else None) for b in RATES},
        "escalation_rate_at_budget": auto["escalation_rate_at_budget"],
        "caught_at_calibrated_budget": auto["caught_at_calibrated_budget"],
        "routed_accuracy_oracle_large": auto["routed_accuracy_oracle_large"],
        "decision_ms": _r(statistics.median(decision), 2),
        "token_ms": _r(statistics.median(token), 2) if token else None,
        "glimpse_tokens": glimpse_tokens,
        "hidden_probe": has_probe,
        "hidden_ms": _r(statistics.median([it.hidden_ms for it in report]), 2),
        "without_probe": {k: without_probe[k] for k in ("auroc", "auroc_ci95", "caught_at_budget")},
        "cascade": {k: cascade[k] for k in ("auroc", "auroc_ci95", "caught_at_budget", "escalation_rate_at_budget",
                                            "routed_accuracy_oracle_large")},
        "agreement": agreement,
        "agreement_ms": _r(statistics.median([it.agreement_ms for it in report]), 1) if agreement else None,
        "baselines": {
            "first_token_entropy_auroc": _r(auroc([(it.signals or {}).get("glimpse_entropy_first", 0.0)
                                                   for it in report], wrong)),
            "answer_mean_entropy_auroc": _r(auroc([(it.signals or {}).get("answer_entropy_mean", 0.0)
                                                   for it in report], wrong)),
        },
        "by_category": _by_category(report),
        "replayed_from": [str(p) for p in replay] or None,
        "seconds": round(elapsed, 1),
        "command": command,
    })
    if result["token_ms"]:
        result["decision_tokens"] = _r(result["decision_ms"] / result["token_ms"], 2)
    if online:
        result["online"] = simulate_online([(it.signals or {}, not it.correct) for it in report], auto_model,
                                           route_weights.validation_split("auto", probe=has_probe))
    return result


def replay_items(paths: Sequence[Path | str], *, glimpse_tokens: int = 2) -> list[Item]:
    """The items of ``--dump`` files, their signals recomputed with today's code (the hidden-state probe's
    logit with the shipped probe of the model file that answered, when there is one).

    Raises:
        DatasetError: a file is missing or not a dump.
    """
    from app.bench.fit_routing import Row  # the same feature rule as the fit

    probes: dict[str, HiddenProbe | None] = {}
    items = []
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            objs = [json.loads(line) for line in lines if line.strip()]
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"Cannot read the dump {path} ({exc}).") from exc
        for obj in objs:
            try:
                row = Row(obj, glimpse_tokens)
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"{path} is not an ember bench routing --dump file ({exc}).") from exc
            sha = obj.get("model_sha256")
            if sha not in probes:
                probes[sha] = load_probe(sha) if sha else None
            hp = probes[sha]
            logit = hp.logit_of(row.hidden, row.hidden_next) if hp is not None else None
            if logit is not None:
                row.features["hidden_probe"] = logit
            items.append(Item(row.prompt, [], str(obj.get("split", "all")), str(obj.get("category", "")),
                              reply=str(obj.get("reply", "")), correct=not row.wrong, signals=row.features))
    if not items:
        raise DatasetError("The dump files hold no items.")
    return items


def dump_items(items: Sequence[Item], path: Path | str, *, threads: int | None = None,
               model_path: Path | None = None) -> None:
    """Write one JSON object per scored item: prompt, split, category, ``correct``, the reply, the router's
    ``signals``, the per-token ``steps`` (entropy, log-probability, margin) of the answer, the ``hidden`` state
    at the prompt's last token, the greedy ``opening`` and the agreement ``samples``, and which model file
    (``model_sha256``, ``model_size``) answered."""
    sha = file_sha256(model_path) if model_path else None
    size = model_path.stat().st_size if model_path else None
    with Path(path).open("w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps({"prompt": it.prompt, "split": it.split, "category": it.category,
                                "correct": it.correct, "reply": it.reply, "threads": threads,
                                "signals": it.signals, "steps": it.steps, "hidden": it.hidden,
                                "hidden_next": it.hidden_next,
                                "opening": it.opening, "samples": it.samples, "model_sha256": sha,
                                "model_size": size}) + "\n")


def _by_category(items: list[Item]) -> dict[str, dict[str, float]]:
    cats: dict[str, list[Item]] = {}
    for it in items:
        cats.setdefault(it.category or "-", []).append(it)
    return {c: {"items": len(v), "small_accuracy": _r(sum(i.correct for i in v) / len(v))} for c, v in cats.items()}


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def format_routing(result: dict[str, Any]) -> str:
    """A readable summary of :func:`bench_routing`'s result."""
    lines = [f"Routing on {result['items']} {result['split']} items ({result['model']}): small model accuracy "
             f"{result['small_accuracy']:.1%}",
             f"auto score AUROC {result['auroc']} (95% CI {result['auroc_ci95'][0]}-{result['auroc_ci95'][1]}; "
             f"first-token entropy alone: "
             f"{result['baselines']['first_token_entropy_auroc']}); cascade AUROC {result['cascade']['auroc']}",
             f"hidden-state probe: {'yes' if result['hidden_probe'] else 'none for this model'}; without it AUROC "
             f"{result['without_probe']['auroc']}",
             f"decision {result['decision_ms']} ms = {result.get('decision_tokens')} small-model tokens (reading "
             f"the hidden state {result['hidden_ms']} ms); agreement samples {result['agreement_ms']} ms"]
    for b in RATES:
        k = str(b)
        lines.append(f"  budget {b:.0%}: auto catches {result['caught_at_budget'][k]} of wrong answers (perfect "
                     f"{result['perfect_router_at_budget'][k]}), cascade {result['cascade']['caught_at_budget'][k]}"
                     f"; calibrated threshold escalates {result['escalation_rate_at_budget'][k]}")
    if result.get("online"):
        lines.append(format_online(result["online"]))
    lines.append(f"reproduce: {result['command']}")
    return "\n".join(lines)
