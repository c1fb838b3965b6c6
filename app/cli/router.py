"""``ember router status|reset``: what the router learned from your choices, and forgetting it.

``status`` shows, per policy, the labels your turns gave (``/large`` after a small answer: wrong; going on from it:
right), the learning steps taken since the last reset, and the validation AUROC of the learned and the shipped
weights. ``reset`` goes back to the shipped weights (the labels stay stored).
"""

from __future__ import annotations

import argparse
import json

from app.core import Ember
from app.services.surface import router_of


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``router`` command and its actions."""
    router = sub.add_parser("router", help="what the router learned from your choices: status, reset")
    actions = router.add_subparsers(title="actions", metavar="ACTION")
    router.set_defaults(func=lambda a: (router.print_help(), 0)[1])
    p = actions.add_parser("status", help="labels, learning steps and validation AUROC (learned vs shipped)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_status)
    p = actions.add_parser("reset", help="forget what the router learned: score with the shipped weights again")
    p.set_defaults(func=_reset)


def status_lines(status: dict[str, dict[str, object]], *, learn: bool) -> list[str]:
    """The human-readable form of :meth:`app.routing.Router.learning_status`."""
    lines = [f"router.learn: {'on' if learn else 'off (turns are scored with the shipped weights)'}"]
    for policy, s in status.items():
        lines.append(f"{policy}: {s['wrong']} escalated, {s['right']} kept")
        for name, m in s["models"].items():  # type: ignore[union-attr]
            learned, shipped = m["learned_auroc"], m["shipped_auroc"]
            auroc = ("no validation split" if shipped is None
                     else f"validation AUROC learned {learned:.3f} vs shipped {shipped:.3f} "
                          f"({m['validation_items']} items)")
            lines.append(f"  {name}: {m['updates']} updates ({m['rejected']} shrunk by the guard); {auroc}")
    return lines


def _status(args: argparse.Namespace) -> int:
    core = Ember.open()
    try:
        status = router_of(core).learning_status()
        if args.json:
            print(json.dumps({"learn": core.settings.router.learn, "policies": status}, indent=2))
        else:
            print("\n".join(status_lines(status, learn=core.settings.router.learn)))
        return 0
    finally:
        core.close()


def _reset(args: argparse.Namespace) -> int:
    core = Ember.open()
    try:
        router_of(core).reset_learning()
        print("The router scores with its shipped weights again (your labels stay stored).")
        return 0
    finally:
        core.close()
