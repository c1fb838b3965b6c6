"""``ember bench routing --online``: how learning from the user's labels changes the router over time.

A labelled stream (the benchmark's items, answered by the small model, in a fixed random order) is replayed
through :class:`inference.route_learning.OnlineRouter` the way a user's turns would reach it: each item is scored
first, with what the router has learned so far, and only then its label (escalated or kept) is learned from. So
every figure is on items the router had not yet learned from (prequential evaluation). The stream is cut into
windows; per window the learned and the shipped score are compared by AUROC and by the share of wrong answers
caught at a budget. Several orders are replayed and averaged.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from inference.route_learning import LearningConfig, OnlineRouter
from inference.router import ScoreModel, auroc, caught_at_rate

Row = tuple[Mapping[str, float], bool]


def simulate_online(rows: Sequence[Row], shipped: ScoreModel, validation: Sequence[Row], *, windows: int = 4,
                    orders: int = 5, budget: float = 0.3, seed: int = 0,
                    config: LearningConfig | None = None) -> dict[str, Any]:
    """Replay ``rows`` (signals, wrong) ``orders`` times in random orders through an online learner starting
    from ``shipped`` and guarded by ``validation``; per window of the stream, the mean AUROC and caught-at-budget
    of the learned (scored before each label is learned) and the shipped score."""
    if len(rows) < windows * 4:
        raise ValueError(f"an online replay needs at least {windows * 4} labelled items, got {len(rows)}")
    rng = np.random.default_rng(seed)
    per_window: list[dict[str, list[float]]] = [{"learned_auroc": [], "shipped_auroc": [], "learned_caught": [],
                                                 "shipped_caught": []} for _ in range(windows)]
    final_val, updates, rejected = [], [], []
    shipped_val = None
    for _ in range(orders):
        order = rng.permutation(len(rows))
        learner = OnlineRouter(shipped, validation, config or LearningConfig())
        shipped_val = learner.validation_auroc()
        learned_scores, shipped_scores, labels = [], [], []
        for i in order:
            signals, wrong = rows[i]
            learned_scores.append(learner.score(signals))
            shipped_scores.append(shipped.score(signals))
            labels.append(bool(wrong))
            learner.update(signals, wrong)
        bounds = np.linspace(0, len(order), windows + 1).astype(int)
        for w in range(windows):
            a, b = bounds[w], bounds[w + 1]
            lab = labels[a:b]
            for name, scores in (("learned", learned_scores[a:b]), ("shipped", shipped_scores[a:b])):
                per_window[w][f"{name}_auroc"].append(auroc(scores, lab) or 0.5)
                per_window[w][f"{name}_caught"].append(caught_at_rate(scores, lab, budget) or 0.0)
        final_val.append(learner.validation_auroc())
        updates.append(learner.updates)
        rejected.append(learner.rejected)
    bounds = np.linspace(0, len(rows), windows + 1).astype(int)
    return {
        "items": len(rows),
        "orders": orders,
        "budget": budget,
        "windows": [{"items": f"{bounds[w] + 1}-{bounds[w + 1]}",
                     **{k: round(float(np.mean(v)), 4) for k, v in per_window[w].items()}}
                    for w in range(windows)],
        "validation_auroc": {"shipped": None if shipped_val is None else round(shipped_val, 4),
                             "learned_min": None if final_val[0] is None else round(min(final_val), 4)},
        "updates": int(np.mean(updates)),
        "rejected_by_guard": int(np.mean(rejected)),
    }


def format_online(result: Mapping[str, Any]) -> str:
    """A readable table of :func:`simulate_online`'s windows."""
    lines = [f"Online learning over {result['items']} labelled turns ({result['orders']} orders; each item scored "
             f"before its label is learned), caught at budget {result['budget']:.0%}:"]
    for w in result["windows"]:
        lines.append(f"  items {w['items']}: AUROC learned {w['learned_auroc']} vs shipped {w['shipped_auroc']}; "
                     f"caught learned {w['learned_caught']} vs shipped {w['shipped_caught']}")
    v = result["validation_auroc"]
    lines.append(f"  validation AUROC: shipped {v['shipped']}, learned (lowest of the orders) {v['learned_min']}; "
                 f"{result['updates']} updates, {result['rejected_by_guard']} refused by the guard")
    return "\n".join(lines)
