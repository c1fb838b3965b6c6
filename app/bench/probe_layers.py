"""Which layer's state best predicts the small model's errors: a per-layer sweep of the routing probe.

Usage::

    EMBER_HOME=$(mktemp -d) ember bench routing --threads 1 --dump rt.jsonl   # labels: right or wrong per item
    python -m app.bench.probe_layers rt.jsonl [--model FILE.gguf] [--json]

For every *train* item of the dumps (the validation fifth and the test split are never read, as in
:mod:`app.bench.fit_routing`), the prompt the glimpse sees (the default system prompt and the question, in the
model's chat template) is evaluated once with every layer's output read at its last token
(:class:`inference.layer_states.LayerStates`). The same L2-regularised logistic probe the router ships
(:func:`inference.hidden_probe.fit_probe`) is then scored per layer by out-of-fold AUROC, folds grouped by prompt,
beside the final hidden state that the shipped probe reads, and as a learning curve (AUROC against the share of
train rows fitted on) that says whether more labelled questions of the same kind would help.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from app.bench.fit_routing import Row, load_train
from app.bench.routing import question_messages
from app.settings import ChatSettings
from inference.chat_prompt import fit_chat_prompt
from inference.hidden_probe import file_sha256, find_probe, out_of_fold_logits
from inference.layer_states import LayerStates
from inference.llama_model import ContextParams, LlamaModel
from inference.router import auroc
from models.starter import find_starter_file

FRACTIONS = (0.4, 0.6, 0.8, 1.0)


def read_states(model: LlamaModel, prompts: Sequence[str], system: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(each prompt's layer outputs ``(n, n_layer, n_embd)``, its final hidden states ``(n, n_embd)``)."""
    layers, finals = [], []
    with LayerStates(model) as reader:
        for prompt in prompts:
            per_layer, final = reader.read(fit_chat_prompt(model, question_messages(prompt, system), 64).tokens)
            layers.append(per_layer)
            finals.append(final)
    return np.stack(layers), np.stack(finals)


def probe_auroc(x: np.ndarray, rows: Sequence[Row], l2: float, *, keep: np.ndarray | None = None,
                seeds: Sequence[int] = (0, 1)) -> float:
    """Mean out-of-fold AUROC of the probe on ``x`` (one row per item of ``rows``), over ``seeds`` fold splits;
    ``keep`` (a mask) fits each fold on those rows only, while every row is still scored."""
    wrong = np.array([r.wrong for r in rows])
    groups = [r.prompt for r in rows]
    results = []
    for seed in seeds:
        logits = out_of_fold_logits(x, list(wrong), groups, l2=l2, seed=seed, fit_on=keep)
        results.append(auroc(list(logits), list(wrong)) or 0.5)
    return float(np.mean(results))


def sweep(dumps: Sequence[Path | str], model_path: Path, *, l2: float = 300.0, every: int = 1,
          progress=None) -> dict[str, Any]:
    """Read every train prompt's layer states and score the probe per layer (see the module's doc).

    Raises:
        ValueError: the dumps hold no train items, or were made with another model file.
    """
    rows = [r for r in load_train(dumps) if not r.held_out]
    if not rows:
        raise ValueError("there are no train items in the dumps")
    shas = {r.model[0] for r in rows if r.model[0]}
    if shas and shas != {file_sha256(model_path)}:
        raise ValueError(f"{model_path.name} is not the model file the dumps were made with (pass --model)")
    prompts = sorted({r.prompt for r in rows})
    t0 = time.perf_counter()
    model = LlamaModel(model_path, ContextParams(n_ctx=1024))
    try:
        layers, finals = read_states(model, prompts, ChatSettings().system_prompt or None)
    finally:
        model.close()
    read_s = time.perf_counter() - t0
    index = {p: i for i, p in enumerate(prompts)}
    at = np.array([index[r.prompt] for r in rows])
    per_layer = {}
    for layer in range(0, layers.shape[1], every):
        per_layer[layer] = round(probe_auroc(layers[at, layer], rows, l2), 4)
        if progress:
            progress(f"layer {layer}: out-of-fold AUROC {per_layer[layer]}")
    final = round(probe_auroc(finals[at], rows, l2), 4)
    best = max(per_layer, key=lambda k: per_layer[k])
    rng = np.random.default_rng(0)
    curve: dict[str, dict[str, float]] = {}
    for frac in FRACTIONS:
        keep = rng.random(len(rows)) < frac if frac < 1 else np.ones(len(rows), dtype=bool)
        curve[str(frac)] = {"final": round(probe_auroc(finals[at], rows, l2, keep=keep), 4),
                            f"layer_{best}": round(probe_auroc(layers[at, best], rows, l2, keep=keep), 4)}
    return {"rows": len(rows), "prompts": len(prompts), "wrong_rate": round(float(np.mean([r.wrong for r in rows])), 4),
            "n_layer": int(layers.shape[1]), "l2": l2, "per_layer_auroc": per_layer, "final_state_auroc": final,
            "best_layer": best, "learning_curve": curve, "read_s": round(read_s, 1),
            "command": "python -m app.bench.probe_layers " + " ".join(str(d) for d in dumps)
                       + f" --model {model_path} --l2 {l2}" + (f" --every {every}" if every != 1 else "")}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.bench.probe_layers", description=__doc__.split("\n\n")[0])
    ap.add_argument("dumps", nargs="+", help="files written by ember bench routing --dump (their train labels)")
    ap.add_argument("--model", type=Path, help="the small model's GGUF file (default: the starter)")
    ap.add_argument("--l2", type=float, help="the probe's regularisation (default: the shipped probe's for this "
                                             "model, else 300)")
    ap.add_argument("--every", type=int, default=1, help="score every Nth layer")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    model = args.model or find_starter_file()
    if model is None:
        print("no --model given and the starter model is not installed", file=sys.stderr)
        return 2
    shipped = find_probe(model)
    l2 = args.l2 if args.l2 is not None else shipped.l2 if shipped is not None and shipped.l2 > 0 else 300.0
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    try:
        result = sweep(args.dumps, Path(model), l2=l2, every=max(1, args.every), progress=say)
    except ValueError as exc:
        print(f"probe_layers: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['rows']} train rows, wrong rate {result['wrong_rate']}; out-of-fold AUROC of the probe by layer "
              f"(l2 {result['l2']}):")
        for layer, a in result["per_layer_auroc"].items():
            print(f"  layer {layer:3d}  {a:.4f}")
        print(f"  final hidden state (what the shipped probe reads)  {result['final_state_auroc']:.4f}")
        print("learning curve (share of train rows fitted on):", result["learning_curve"])
        print("reproduce:", result["command"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
