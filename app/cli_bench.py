"""``ember bench ...``: benchmarks that print what they measured (``--json``: one JSON object on stdout)."""

from __future__ import annotations

import argparse
import json
import sys

from app.core import Ember


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command and its benchmarks."""
    bench = sub.add_parser("bench", help="benchmarks")
    names = bench.add_subparsers(title="benchmarks", metavar="NAME")
    bench.set_defaults(func=lambda a: (bench.print_help(), 0)[1])

    decode = names.add_parser("decode", help="Ember's decoding against llama-cpp-python's own")
    decode.add_argument("--model", help="library model or .gguf path (default: the chat model)")
    decode.add_argument("--tokens", type=int, default=128, help="tokens generated per run (default: 128)")
    decode.add_argument("--runs", type=int, default=5, help="timed runs of each (default: 5)")
    decode.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    decode.add_argument("--n-ctx", type=int, default=2048, help="context length (default: 2048)")
    decode.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    decode.set_defaults(func=_decode)


def _decode(args: argparse.Namespace) -> int:
    from app.bench_decode import bench_decode, format_decode

    core = Ember.open()
    try:
        result = bench_decode(core, model=args.model, tokens=args.tokens, runs=args.runs, threads=args.threads,
                              n_ctx=args.n_ctx, progress=None if args.json else _progress)
        print(json.dumps(result) if args.json else format_decode(result))
        return 0
    finally:
        core.close()


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
