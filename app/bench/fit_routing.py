"""Refit the router's escalation scores from ``ember bench routing --dump`` files, choosing by cross-validation on
the *train* split only.

Usage (the numbers in :mod:`inference.route_weights` come from exactly this)::

    EMBER_HOME=$(mktemp -d) ember bench routing --threads 1 --dump train_t1.jsonl
    EMBER_HOME=$(mktemp -d) ember bench routing --threads 2 --dump train_t2.jsonl
    python -m app.bench.fit_routing train_t1.jsonl train_t2.jsonl > inference/route_weights_new.py

Runs with different thread counts differ slightly in llama.cpp's numerics, and so in some answers and their
right/wrong labels; fitting on several runs at once keeps the score from leaning on one run's labels. Features are
recomputed from each item's prompt and per-token answer statistics with the current code of
:mod:`inference.route_signals` (the glimpse is the first ``glimpse_tokens`` answer tokens: the same greedy
tokens), so a dump stays usable after the signals change. Items of the ``test`` split are never read.
"""

from __future__ import annotations

import argparse
import json
import pprint
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from inference import route_weights
from inference.route_signals import INTERACTION_FEATURES, TokenUncertainty, route_signals
from inference.router import ScoreModel, auroc, fit_score_model

L2_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def load_train(paths: Iterable[Path | str], *, glimpse_tokens: int = 2) -> list[tuple[str, dict[str, float], bool]]:
    """(prompt, features, wrong) for every *train* item of the dump files."""
    rows = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("split") != "train":
                continue
            rows.append((obj["prompt"], item_features(obj["prompt"], obj.get("steps") or [], glimpse_tokens),
                         not obj["correct"]))
    return rows


def item_features(prompt: str, steps: Sequence[Sequence[float]], glimpse_tokens: int) -> dict[str, float]:
    """The signals ``auto`` and ``cascade`` would see for ``prompt`` given the answer's per-token statistics."""
    tu = [TokenUncertainty(*map(float, s)) for s in steps]
    return route_signals(prompt, tu[:glimpse_tokens], tu)


def cross_validate(rows: Sequence[tuple[str, Mapping[str, float], bool]], names: Sequence[str], l2: float, *,
                   folds: int = 5, repeats: int = 4, seed: int = 0) -> float:
    """Mean out-of-fold AUROC over ``repeats`` random ``folds``-fold splits, grouped by prompt (the runs of one
    prompt with different thread counts always land in the same fold)."""
    prompts = sorted({p for p, _, _ in rows})
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(repeats):
        order = rng.permutation(len(prompts))
        fold_of = {prompts[i]: k % folds for k, i in enumerate(order)}
        scores = [0.0] * len(rows)
        for f in range(folds):
            tr = [r for r in rows if fold_of[r[0]] != f]
            model = fit_score_model([r[1] for r in tr], [r[2] for r in tr], names=names, l2=l2)
            for i, r in enumerate(rows):
                if fold_of[r[0]] == f:
                    scores[i] = model.score(r[1])
        results.append(auroc(scores, [r[2] for r in rows]) or 0.5)
    return float(np.mean(results))


def choose_and_fit(rows: Sequence[tuple[str, Mapping[str, float], bool]], names: Sequence[str],
                   grid: Sequence[float] = L2_GRID) -> tuple[ScoreModel, float, dict[float, float]]:
    """The L2 strength with the best cross-validated AUROC, and the model refitted with it on all ``rows``."""
    cv = {l2: cross_validate(rows, names, l2) for l2 in grid}
    best = max(cv, key=lambda k: (round(cv[k], 3), k))  # ties: the stronger regularisation
    return fit_score_model([r[1] for r in rows], [r[2] for r in rows], names=names, l2=best), best, cv


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.bench.fit_routing", description=__doc__.split("\n\n")[0])
    ap.add_argument("dumps", nargs="+", help="files written by ember bench routing --dump")
    ap.add_argument("--glimpse-tokens", type=int, default=2)
    args = ap.parse_args(argv)
    rows = load_train(args.dumps, glimpse_tokens=args.glimpse_tokens)
    if not rows:
        print("no train items in the dumps", file=sys.stderr)
        return 1
    out = {}
    for name, feats in (("AUTO_MODEL", route_weights.AUTO_FEATURES), ("CASCADE_MODEL", route_weights.CASCADE_FEATURES)):
        model, l2, cv = choose_and_fit(rows, feats)
        without = cross_validate(rows, [f for f in feats if f not in INTERACTION_FEATURES], l2)
        print(f"# {name}: cross-validated train AUROC by l2 {_rounded(cv)}; chosen l2={l2}; without the "
              f"glimpse interactions {without:.4f}", file=sys.stderr)
        out[name] = (model, l2)
    print(f"# {len(rows)} train rows from {len(args.dumps)} dump(s), wrong rate "
          f"{np.mean([r[2] for r in rows]):.3f}", file=sys.stderr)
    for name, (model, l2) in out.items():
        d = model.as_dict()
        print(f"# l2={l2}\n{name} = ScoreModel(\n    bias={d['bias']},")
        for key in ("weights", "centre", "scale"):
            body = pprint.pformat(d[key], sort_dicts=False, width=100)
            print(f"    {key}=" + body.replace("\n", "\n" + " " * (len(key) + 5)) + ",")
        print(")")
    return 0


def _rounded(cv: Mapping[float, float]) -> dict[float, float]:
    return {k: round(v, 4) for k, v in cv.items()}


if __name__ == "__main__":
    raise SystemExit(main())
