"""``ember models ...``: the model library from the command line."""

from __future__ import annotations

import argparse
import json

from app.core import Ember


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` command and its actions."""
    models = sub.add_parser("models", help="the model library")
    actions = models.add_subparsers(title="actions", metavar="ACTION")
    models.set_defaults(func=lambda a: (models.print_help(), 0)[1])

    list_ = actions.add_parser("list", help="list installed models")
    list_.add_argument("--json", action="store_true", help="print JSON")
    list_.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    core = Ember.open()
    try:
        models = core.library.list()
        if args.json:
            print(json.dumps([{**m.__dict__, "path": str(m.path)} for m in models], indent=2))
            return 0
        if not models:
            print("No models installed.")
        for m in models:
            aliases = f" (alias: {', '.join(m.aliases)})" if m.aliases else ""
            print(f"{m.name}{aliases}  {m.quantization or '?'}  {m.size / (1 << 20):.0f} MiB  "
                  f"ctx {m.context_length or '?'}  {m.path}")
        return 0
    finally:
        core.close()
