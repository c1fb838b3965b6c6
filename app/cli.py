"""The ``ember`` command: one program, subcommands for chat, serving, models, benchmarks and diagnostics."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence, TextIO

from app import __version__
from app.core import Ember
from app.setting_flags import add_flags, apply_flags
from inference.sampling import SamplingOptions
from storage.errors import EmberError

log = logging.getLogger(__name__)

SAMPLING_FLAGS = ["temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "max_tokens", "stop"]

def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ember`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
    _add_chat_flags(chat)
    chat.set_defaults(func=_cmd_chat)

    doctor = sub.add_parser("doctor", help="report the llama.cpp backend, hardware, data paths and keyring")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.set_defaults(func=_cmd_doctor)

    models = sub.add_parser("models", help="the model library")
    models_sub = models.add_subparsers(title="models commands", metavar="ACTION")
    models_list = models_sub.add_parser("list", help="list installed models")
    models_list.add_argument("--json", action="store_true", help="print JSON")
    models_list.set_defaults(func=_cmd_models_list)
    models.set_defaults(func=lambda a: (models.print_help(), 0)[1])

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="NAME")
    decode = bench_sub.add_parser("decode", help="Ember's decoding against llama-cpp-python's own")
    decode.add_argument("--model", help="library model or .gguf path (default: the chat model)")
    decode.add_argument("--tokens", type=int, default=128, help="tokens generated per run (default: 128)")
    decode.add_argument("--runs", type=int, default=5, help="timed runs of each (default: 5)")
    decode.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    decode.add_argument("--n-ctx", type=int, default=2048, help="context length (default: 2048)")
    decode.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    decode.set_defaults(func=_cmd_bench_decode)
    bench.set_defaults(func=lambda a: (bench.print_help(), 0)[1])
    return parser

def _add_chat_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", help="library model name, alias or .gguf path (default: from settings)")
    p.add_argument("--system", help="system prompt for a new conversation ('' for none)")
    p.add_argument("--conversation", type=int, help="continue the conversation with this id")
    p.add_argument("--verbose", "-v", action="store_true", help="print reply stats to stderr")
    add_flags(p, SamplingOptions, SAMPLING_FLAGS, dest_prefix="sampling_")

# -- commands ------------------------------------------------------------------------------------------------------

def _cmd_default(args: argparse.Namespace) -> int:
    print("ember: the desktop window is not part of this build yet; starting the terminal chat "
          "(type /help for commands).", file=sys.stderr)
    chat_args = build_parser().parse_args(["chat"])
    return _cmd_chat(chat_args)

def _cmd_chat(args: argparse.Namespace) -> int:
    from app.terminal_chat import one_shot, interactive

    core = Ember.open()
    try:
        options = apply_flags(core.settings.sampling, args, dest_prefix="sampling_")
        spec = core.model_spec(args.model)
        prompt = args.prompt
        if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
            prompt = sys.stdin.read()
        if prompt is not None:
            return one_shot(core, prompt, spec=spec, options=options, system=args.system,
                            conversation_id=args.conversation, verbose=args.verbose)
        return interactive(core, spec=spec, options=options, system=args.system,
                           conversation_id=args.conversation, verbose=args.verbose)
    finally:
        core.close()

def _cmd_doctor(args: argparse.Namespace) -> int:
    from app.doctor import doctor_report, format_report

    report = doctor_report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0

def _cmd_models_list(args: argparse.Namespace) -> int:
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

def _cmd_bench_decode(args: argparse.Namespace) -> int:
    from app.bench import bench_decode, format_decode

    core = Ember.open()
    try:
        result = bench_decode(core, model=args.model, tokens=args.tokens, runs=args.runs, threads=args.threads,
                              n_ctx=args.n_ctx, progress=None if args.json else _stderr_line)
        print(json.dumps(result) if args.json else format_decode(result))
        return 0
    finally:
        core.close()

def _stderr_line(text: str, stream: TextIO = sys.stderr) -> None:
    print(text, file=stream, flush=True)
