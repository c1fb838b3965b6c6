"""The ``ember`` command: one program, subcommands for chat, serving, models, benchmarks and diagnostics.

Known errors (``EmberError``) end here: one line on stderr and exit code 1. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from app import __version__
from app.cli import bench as cli_bench
from app.cli import conversations as cli_conversations
from app.cli import models as cli_models
from app.cli import router as cli_router
from app.cli import serve as cli_serve
from app.services.conversation_settings import turn_sampling
from app.core import Ember
from app.cli.setting_flags import add_flags, apply_flags
from inference.router import POLICIES
from inference.sampling import SamplingOptions
from storage.errors import EmberError

SAMPLING_FLAGS = ["temperature", "top_p", "top_k", "min_p", "repeat_penalty", "dry_multiplier", "seed", "max_tokens",
                  "stop", "stop_loops"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ember`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmberError as exc:
        print(f"ember: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="ember", description="Run open-weight LLMs on your own machine.")
    parser.add_argument("--version", action="version", version=f"ember {__version__}")
    parser.set_defaults(func=_cmd_default)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    chat = sub.add_parser("chat", help="terminal chat, or a one-shot answer to PROMPT")
    chat.add_argument("prompt", nargs="?", help="answer this and exit (default: interactive chat; '-' reads stdin)")
    add_chat_flags(chat)
    chat.set_defaults(func=_cmd_chat)

    doctor = sub.add_parser("doctor", help="report the llama.cpp backend, hardware, data paths and keyring")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.set_defaults(func=_cmd_doctor)

    window = sub.add_parser("desktop", help="start the desktop app (what `ember` alone does when a display "
                                            "exists)")
    window.add_argument("--quit-after", type=float, metavar="SECONDS", help="quit by itself after this long "
                                                                              "(smoke tests)")
    window.set_defaults(func=_cmd_desktop)

    desktop = sub.add_parser("install-desktop", help="add Ember to the desktop menu (Linux .desktop entry + icon)")
    desktop.add_argument("--prefix", type=Path, help="XDG data folder to install into (default: ~/.local/share)")
    desktop.set_defaults(func=_cmd_install_desktop)

    # Each command family registers its own subcommands.
    cli_models.register(sub)
    cli_conversations.register(sub)
    cli_bench.register(sub)
    cli_serve.register(sub)
    cli_router.register(sub)
    return parser


def add_chat_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``ember chat`` (model, system prompt, sampling settings from their declaration)."""
    p.add_argument("--model", "-m", help="library model name, alias or .gguf path (default: from settings)")
    system = p.add_mutually_exclusive_group()
    system.add_argument("--system", help="system prompt for a new conversation ('' for none)")
    system.add_argument("--preset", metavar="NAME", help="system prompt for a new conversation from this preset "
                                                         "(see `ember presets list`)")
    p.add_argument("--conversation", type=int, help="continue the conversation with this id")
    p.add_argument("--verbose", "-v", action="store_true", help="print reply stats to stderr")
    spec = p.add_mutually_exclusive_group()
    spec.add_argument("--draft", metavar="MODEL", help="speculative decoding with this draft model (same "
                                                       "tokenizer, smaller)")
    spec.add_argument("--lookup", action="store_true", help="speculative decoding by prompt lookup (text reused "
                                                            "from the conversation)")
    add_flags(p, SamplingOptions, SAMPLING_FLAGS, dest_prefix="sampling_")
    p.add_argument("--router", choices=POLICIES, help="route between the small model and a large tier (default: "
                                                      "from settings); '/large ' before a message forces it")
    p.add_argument("--large", metavar="MODEL_OR_URL", help="large tier: a library model, a .gguf path or the base "
                                                           "URL of an OpenAI-compatible server (URL#model names "
                                                           "its model)")


def _cmd_default(args: argparse.Namespace) -> int:
    try:
        from app.desktop import display_available, run_desktop
    except ImportError as exc:  # Qt's system libraries are missing (a bare server)
        reason = f"the desktop window cannot start ({exc})"
    else:
        if display_available():
            return run_desktop()
        reason = "no display is available (no DISPLAY or WAYLAND_DISPLAY), so the desktop window cannot open"
    print(f"ember: {reason}; starting the terminal chat instead (type /help for commands).", file=sys.stderr)
    return _cmd_chat(build_parser().parse_args(["chat"]))


def _cmd_desktop(args: argparse.Namespace) -> int:
    from app.desktop import run_desktop

    return run_desktop(quit_after=args.quit_after)


def _cmd_chat(args: argparse.Namespace) -> int:
    from app.cli.terminal_chat import interactive, one_shot

    core = Ember.open()
    try:
        base = core.settings.sampling  # a continued conversation: its own sampling, the flags on top (this turn)
        if args.conversation is not None:
            conv = core.conversations.get(args.conversation)
            base = turn_sampling(base, conv.settings, conversation_id=conv.id)
        options = apply_flags(base, args, dest_prefix="sampling_")
        system = args.system
        if getattr(args, "preset", None):
            from storage.presets import PresetStore

            system = PresetStore(core.db).get(args.preset).prompt
        spec = core.model_spec(args.model, draft=args.draft, lookup=args.lookup)
        prompt = args.prompt
        if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
            prompt = sys.stdin.read()
        route = None
        if getattr(args, "router", None) or getattr(args, "large", None):
            from app.routing import RouteRequest

            route = RouteRequest(policy=args.router, large=args.large)
        if prompt is not None:
            return one_shot(core, prompt, spec=spec, options=options, system=system,
                            conversation_id=args.conversation, verbose=args.verbose, route=route)
        return interactive(core, spec=spec, options=options, system=system,
                           conversation_id=args.conversation, verbose=args.verbose, route=route)
    finally:
        core.close()


def _cmd_install_desktop(args: argparse.Namespace) -> int:
    from app.desktop_entry import install_desktop

    for path in install_desktop(data_home=args.prefix):
        print(f"wrote {path}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from app.cli.doctor import doctor_report, format_report

    report = doctor_report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
