"""Refit the router's escalation scores and the small model's hidden-state probe from ``ember bench routing --dump``
files, choosing by cross-validation on the *train* split only.

Usage (``inference/route_models.json`` and ``inference/probes/`` come from exactly this)::

    EMBER_HOME=$(mktemp -d) ember bench routing --threads 1 --dump train_t1.jsonl
    EMBER_HOME=$(mktemp -d) ember bench routing --threads 2 --dump train_t2.jsonl
    python -m app.bench.fit_routing train_t1.jsonl train_t2.jsonl --write

Runs with different thread counts differ slightly in llama.cpp's numerics, and so in some answers and their
right/wrong labels; fitting on several runs at once keeps the score from leaning on one run's labels. Features are
recomputed from each item's prompt, per-token answer statistics, hidden state and agreement samples with the
current code of :mod:`inference.route_signals` (the glimpse is the first ``glimpse_tokens`` answer tokens: the same
greedy tokens), so a dump stays usable after the signals change. Items of the ``test`` split are never read.

One train prompt in five (by a hash of its text) is held out as the shipped models' *validation* split: nothing is
fitted on it; it is stored with the models and guards online learning. The probe is fitted on the rest; the score
models weigh its out-of-fold logits (a probe's logits on its own training rows would look better than they are).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from inference import route_weights
from inference.hidden_probe import SHIPPED_DIR, fit_probe, out_of_fold_logits
from inference.route_signals import TokenUncertainty, agreement_features, route_signals
from inference.router import ScoreModel, auroc, fit_score_model

L2_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
PROBE_L2_GRID = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
AGREEMENT_MIN_GAIN = 0.005  # cross-validated AUROC the cascade's agreement samples must add to be used
PROBE_INPUTS: tuple[tuple[str, ...], ...] = (("prompt",), ("first",), ("prompt", "first"))


class Row:
    """One answered train prompt of one dump: its features, label and hidden state."""

    def __init__(self, obj: Mapping, glimpse_tokens: int) -> None:
        self.prompt: str = obj["prompt"]
        self.wrong = not obj["correct"]
        self.hidden = np.asarray(obj["hidden"], dtype=np.float64) if obj.get("hidden") else None
        self.hidden_next = np.asarray(obj["hidden_next"], dtype=np.float64) if obj.get("hidden_next") else None
        samples = obj.get("samples")
        agree = agreement_features(obj.get("opening") or "", samples) if samples else None
        self.features = item_features(self.prompt, obj.get("steps") or [], glimpse_tokens, agreement=agree)
        self.model = (obj.get("model_sha256"), obj.get("model_size"))

    @property
    def held_out(self) -> bool:
        """In the validation split (one prompt in five, by a hash of its text)."""
        return int(hashlib.sha256(self.prompt.encode()).hexdigest(), 16) % 5 == 0

    def as_tuple(self) -> tuple[str, dict[str, float], bool]:
        return self.prompt, self.features, self.wrong

    def state(self, inputs: Sequence[str]) -> np.ndarray | None:
        """The probe's input vector: the named states concatenated (None when one is missing)."""
        parts = [{"prompt": self.hidden, "first": self.hidden_next}[name] for name in inputs]
        return None if any(p is None for p in parts) else np.concatenate(parts)


def load_train(paths: Iterable[Path | str], *, glimpse_tokens: int = 2) -> list[Row]:
    """Every *train* item of the dump files."""
    rows = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                if obj.get("split") == "train":
                    rows.append(Row(obj, glimpse_tokens))
    return rows


def item_features(prompt: str, steps: Sequence[Sequence[float]], glimpse_tokens: int, *,
                  agreement: dict[str, float] | None = None) -> dict[str, float]:
    """The signals ``auto`` and ``cascade`` would see for ``prompt`` given the answer's per-token statistics
    (and the agreement features of its samples)."""
    tu = [TokenUncertainty(*map(float, s)) for s in steps]
    return route_signals(prompt, tu[:glimpse_tokens], tu, agreement=agreement)


def probe_cv(rows: Sequence[Row], l2: float, inputs: Sequence[str] = ("prompt",)) -> float:
    """Out-of-fold AUROC of the hidden-state probe reading ``inputs`` (folds grouped by prompt)."""
    x = np.stack([r.state(inputs) for r in rows])
    logits = out_of_fold_logits(x, [r.wrong for r in rows], [r.prompt for r in rows], l2=l2)
    return auroc(list(logits), [r.wrong for r in rows]) or 0.5


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
    ap.add_argument("--write", action="store_true", help="write inference/route_models.json and the probe into "
                                                          "inference/probes/ (else print the models)")
    args = ap.parse_args(argv)
    rows = load_train(args.dumps, glimpse_tokens=args.glimpse_tokens)
    if not rows:
        print("no train items in the dumps", file=sys.stderr)
        return 1
    fit_rows = [r for r in rows if not r.held_out]
    val_rows = [r for r in rows if r.held_out]
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    log(f"# {len(rows)} train rows from {len(args.dumps)} dump(s) ({len(fit_rows)} fitted on, {len(val_rows)} "
        f"held out for validation), wrong rate {np.mean([r.wrong for r in rows]):.3f}")

    probe = None
    models_of = {(r.model) for r in rows}
    if all(r.hidden is not None for r in rows) and len(models_of) == 1:
        choices = [c for c in PROBE_INPUTS if all(r.state(c) is not None for r in rows)]
        cv = {(c, l2): probe_cv(fit_rows, l2, c) for c in choices for l2 in PROBE_L2_GRID}
        inputs, l2 = max(cv, key=lambda k: (round(cv[k], 3), -len(k[0]), k[1]))  # ties: fewer inputs, more l2
        table = {"+".join(c) + f",l2={v}": round(a, 4) for (c, v), a in cv.items()}
        log(f"# hidden-state probe: out-of-fold AUROC by inputs and l2 {table}; chosen {'+'.join(inputs)}, l2={l2}")
        x = np.stack([r.state(inputs) for r in fit_rows])
        oof = out_of_fold_logits(x, [r.wrong for r in fit_rows], [r.prompt for r in fit_rows], l2=l2)
        sha, size = next(iter(models_of))
        probe = fit_probe(x, [r.wrong for r in fit_rows], l2=l2, model_sha256=sha or "", model_size=size or 0,
                          inputs=tuple(inputs),
                          note=f"{len(fit_rows)} train rows of {len(args.dumps)} dump(s); l2={l2}")
        for r, v in zip(fit_rows, oof):
            r.features["hidden_probe"] = float(v)
        for r in val_rows:
            r.features["hidden_probe"] = probe.logit(r.state(inputs))
        log(f"# probe on the validation split: AUROC "
            f"{auroc([r.features['hidden_probe'] for r in val_rows], [r.wrong for r in val_rows])}")
    else:
        log("# no hidden-state probe: the dumps lack hidden states or come from more than one model file")

    models: dict[str, dict] = {}
    for name, feats in route_weights.FEATURES.items():
        if "hidden_probe" in feats and probe is None:
            continue
        tuples = [r.as_tuple() for r in fit_rows]
        model, l2, cv = choose_and_fit(tuples, feats)
        if set(route_weights.AGREEMENT_FEATURES) & set(feats):  # the samples cost time: kept only if they pay
            plain = [f for f in feats if f not in route_weights.AGREEMENT_FEATURES]
            alt, alt_l2, alt_cv = choose_and_fit(tuples, plain)
            keep = cv[l2] >= alt_cv[alt_l2] + AGREEMENT_MIN_GAIN
            log(f"# {name}: cross-validated AUROC with the agreement samples {cv[l2]:.4f}, without "
                f"{alt_cv[alt_l2]:.4f}: {'kept' if keep else 'left out'} (they must add {AGREEMENT_MIN_GAIN})")
            if not keep:
                model, l2, cv, feats = alt, alt_l2, alt_cv, plain
        val = auroc([model.score(r.features) for r in val_rows], [r.wrong for r in val_rows])
        log(f"# {name}: cross-validated train AUROC by l2 {_rounded(cv)}; chosen l2={l2}; validation AUROC "
            f"{None if val is None else round(val, 4)}")
        models[name] = {**model.as_dict(), "features": feats, "l2": l2, "cv_auroc": round(cv[l2], 4),
                        "validation_auroc": round(val or 0.5, 4)}
    data = {"note": f"fitted by python -m app.bench.fit_routing on {len(fit_rows)} train rows of "
                    f"{len(args.dumps)} dump(s); {len(val_rows)} held out as the validation split",
            "models": models,
            "validation": [[{k: round(v, 5) for k, v in r.features.items()}, r.wrong] for r in val_rows]}
    if args.write:
        route_weights.MODELS_FILE.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        log(f"# wrote {route_weights.MODELS_FILE}")
        if probe is not None:
            log(f"# wrote {probe.save(SHIPPED_DIR)}")
    else:
        json.dump(data["models"], sys.stdout, indent=1)
    return 0


def _rounded(cv: Mapping[float, float]) -> dict[float, float]:
    return {k: round(v, 4) for k, v in cv.items()}


if __name__ == "__main__":
    raise SystemExit(main())
