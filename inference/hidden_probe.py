"""The hidden-state probe: a linear read-out of the small model's own state for "this answer will be wrong".

The glimpse already evaluates the prompt; with ``hidden=True`` it also reads the model's last hidden state at the
prompt's last token (:meth:`inference.llama_model.LlamaModel.ingest_prompt`). A regularised logistic probe on that
vector, fitted on the *train* split of the routing questions only (``python -m app.bench.fit_routing``), gives one
more signal, ``hidden_probe`` (its logit), that the escalation score weighs with the others.

A probe belongs to one model file: it is stored as JSON named by the file's sha256, in the shipped folder beside the
router's weights (``inference/probes/``) or in the user's own folder. A model without a fitted probe is routed on
the other signals, with the score model fitted without it (:mod:`inference.route_weights`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

SHIPPED_DIR = Path(__file__).parent / "probes"


@dataclass(frozen=True)
class HiddenProbe:
    """``bias + ((h - mean) / scale) @ weights``: the log-odds that the model's answer to the prompt is wrong."""

    model_sha256: str
    model_size: int
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    l2: float = 0.0
    note: str = ""  # what it was fitted on
    # which states it reads, concatenated: "prompt" (at the prompt's last token), "first" (after the first answer
    # token: the glimpse's own decode)
    inputs: tuple[str, ...] = ("prompt",)

    def logit(self, hidden: np.ndarray) -> float:
        """The probe's log-odds for one input vector (the :attr:`inputs` states concatenated)."""
        h = np.asarray(hidden, dtype=np.float64)
        return float(((h - self.mean) / self.scale) @ self.weights + self.bias)

    def logit_of(self, prompt_state: np.ndarray | None, first_state: np.ndarray | None) -> float | None:
        """The log-odds from the glimpse's states, or None when one the probe reads is missing."""
        states = {"prompt": prompt_state, "first": first_state}
        parts = [states[name] for name in self.inputs]
        if any(p is None for p in parts):
            return None
        vec = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
        return self.logit(vec) if vec.shape == self.mean.shape else None

    def to_json(self) -> dict:
        """A JSON-ready form (what the probe files hold)."""
        return {"model_sha256": self.model_sha256, "model_size": self.model_size, "l2": self.l2,
                "note": self.note, "inputs": list(self.inputs), "bias": round(self.bias, 6),
                "mean": [round(float(v), 6) for v in self.mean],
                "scale": [round(float(v), 6) for v in self.scale],
                "weights": [round(float(v), 6) for v in self.weights]}

    @classmethod
    def from_json(cls, d: dict) -> "HiddenProbe":
        """Read back :meth:`to_json`.

        Raises:
            ValueError: the vectors are missing or of different lengths.
        """
        mean, scale, weights = (np.asarray(d[k], dtype=np.float64) for k in ("mean", "scale", "weights"))
        if not (mean.shape == scale.shape == weights.shape) or mean.ndim != 1:
            raise ValueError("a hidden-state probe needs mean, scale and weights of one length")
        inputs = tuple(str(x) for x in d.get("inputs", ["prompt"]))
        if not inputs or not set(inputs) <= {"prompt", "first"}:
            raise ValueError(f"unknown probe inputs {inputs}")
        return cls(str(d["model_sha256"]), int(d["model_size"]), mean, scale, weights, float(d["bias"]),
                   float(d.get("l2", 0.0)), str(d.get("note", "")), inputs)

    def save(self, folder: Path) -> Path:
        """Write the probe as ``folder/<sha256>.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.model_sha256}.json"
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n", encoding="utf-8")
        return path


def fit_probe(hidden: np.ndarray, wrong: Sequence[bool], *, l2: float, model_sha256: str = "",
              model_size: int = 0, note: str = "", steps: int = 400,
              inputs: tuple[str, ...] = ("prompt",)) -> HiddenProbe:
    """An L2-regularised logistic probe on standardised hidden states (Newton's method: a few hundred dimensions,
    a thousand rows).

    Args:
        hidden: one hidden state per row.
        wrong: True where the small model's answer was wrong.
        l2: regularisation strength (on the standardised weights, per row).
    """
    x = np.asarray(hidden, dtype=np.float64)
    y = np.asarray(wrong, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or not len(y):
        raise ValueError("hidden must be a non-empty matrix with one row per label")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    xs = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    n, d = xs.shape
    reg = np.full(d, l2)
    reg[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(d)
    for _ in range(min(steps, 50)):
        p = 1.0 / (1.0 + np.exp(-np.clip(xs @ w, -30, 30)))
        grad = xs.T @ (p - y) / n + reg * w / n
        hess = (xs.T * (p * (1 - p))) @ xs / n + np.diag(reg / n + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-6:
            break
    return HiddenProbe(model_sha256, model_size, mean, scale, w[:-1].copy(), float(w[-1]), l2, note, inputs)


def out_of_fold_logits(hidden: np.ndarray, wrong: Sequence[bool], groups: Sequence[str], *, l2: float,
                       folds: int = 5, seed: int = 0, fit_on: np.ndarray | None = None) -> np.ndarray:
    """Each row's probe logit from a probe fitted without its group's rows (``groups``: the prompt, so the runs of
    one prompt stay together): the honest probe signal for fitting the score model that weighs it.

    ``fit_on`` (a mask) fits each fold's probe on those rows only, while every row is still scored (a learning
    curve)."""
    x = np.asarray(hidden, dtype=np.float64)
    y = np.asarray(wrong, dtype=bool)
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: k % folds for k, i in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    out = np.zeros(len(y))
    for f in range(folds):
        test = fold == f
        fit = ~test if fit_on is None else ~test & np.asarray(fit_on, dtype=bool)
        probe = fit_probe(x[fit], list(y[fit]), l2=l2)
        out[test] = [probe.logit(h) for h in x[test]]
    return out


# -- finding a model's probe -------------------------------------------------------------------------------------

_hash_lock = threading.Lock()
_hashes: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The sha256 of a file, remembered per (path, size, mtime) for this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hashes:
            return _hashes[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    with _hash_lock:
        _hashes[key] = h.hexdigest()
    return _hashes[key]


def find_probe(model_path: Path | str, folders: Iterable[Path] = (SHIPPED_DIR,)) -> HiddenProbe | None:
    """The probe fitted for this model file, or None. The file is hashed only when some probe in ``folders`` was
    fitted on a file of its size (so models without one cost nothing); a later folder's probe wins."""
    path = Path(model_path)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    candidates: list[tuple[Path, dict]] = []
    for folder in folders:
        for f in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
            try:
                d = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(d, dict) and d.get("model_size") == size:
                candidates.append((f, d))
    if not candidates:
        return None
    return load_probe(file_sha256(path), [f.parent for f, _ in candidates])


def load_probe(sha256: str, folders: Iterable[Path] = (SHIPPED_DIR,)) -> HiddenProbe | None:
    """The probe fitted for the model file with this sha256 (``<sha256>.json`` in ``folders``, a later folder's
    winning), or None; an unreadable probe file counts as none."""
    for folder in reversed(list(folders)):
        path = Path(folder) / f"{sha256}.json"
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(d, dict) and d.get("model_sha256") == sha256:
                return HiddenProbe.from_json(d)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None
