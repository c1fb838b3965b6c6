"""``ember bench ...``: benchmarks that print what they measured (``--json``: one JSON object on stdout)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

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
    decode.add_argument("--multiturn", action="store_true", help="time to first token over a long conversation "
                                                                  "and when switching back to one")
    decode.add_argument("--turns", type=int, default=20, help="turns of the --multiturn conversation (default: 20)")
    decode.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto",
                        help="flash attention for both engines (default: auto, the engine's own choice)")
    decode.add_argument("--native", type=Path, default=None, metavar="LLAMA_BENCH",
                        help="also run llama.cpp's own llama-bench (make bench-native builds it) on the same "
                             "file and threads")
    decode.add_argument("--busy", type=int, default=0, metavar="N",
                        help="also measure while N competing processes keep the CPU busy (default: 0)")
    decode.add_argument("--busy-kind", choices=["loop", "llama"], default="loop",
                        help="what competes: a plain CPU loop each, or llama.cpp decoding on every core "
                             "(default: loop)")
    decode.set_defaults(func=_decode)

    api = names.add_parser("api", help="Ember's HTTP API against reference servers, 1..N streaming clients "
                                       "(TTFT, tokens/s)")
    api.add_argument("--model", help="library model or .gguf path (default: the chat model)")
    api.add_argument("--tokens", type=int, default=128, help="tokens per reply (default: 128)")
    api.add_argument("--runs", type=int, default=3, help="timed rounds per client count (default: 3)")
    api.add_argument("--clients", type=int, nargs="+", default=[1, 4], metavar="N",
                     help="concurrent streaming clients, one or more counts (default: 1 4)")
    api.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    api.add_argument("--n-ctx", type=int, default=8192, help="context length (default: 8192)")
    api.add_argument("--llama-server", type=Path, default=None, metavar="PATH",
                     help="also measure llama.cpp's native llama-server (make bench-native builds it)")
    api.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto",
                     help="flash attention for every server (default: auto, Ember's own choice)")
    api.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    api.set_defaults(func=_api)

    spec = names.add_parser("speculative", help="plain against speculative decoding (draft model, prompt lookup)")
    spec.add_argument("--model", help="target: library model or .gguf path (default: the chat model; for --draft, "
                                      "a requantised copy of the draft)")
    kind = spec.add_mutually_exclusive_group()
    kind.add_argument("--draft", metavar="MODEL", help="only the draft-model mode, with this draft")
    kind.add_argument("--lookup", action="store_true", help="only the prompt-lookup mode")
    spec.add_argument("--prompts", metavar="FILE.jsonl", help="one {\"prompt\": ...} per line (default: the "
                                                              "built-in copy-heavy and free-form suites)")
    spec.add_argument("--tokens", type=int, default=128, help="most tokens per reply (default: 128)")
    spec.add_argument("--max-draft", type=int, default=8, help="longest draft (default: 8)")
    spec.add_argument("--target-quant", choices=["q8_0", "f16"], default="q8_0",
                      help="requantisation of the draft used as target when --model is not given (default: q8_0)")
    spec.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    spec.add_argument("--n-ctx", type=int, default=2048, help="context length (default: 2048)")
    spec.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    spec.set_defaults(func=_speculative)

    routing = names.add_parser("routing", help="how well the router's escalation score finds the small model's "
                                              "wrong answers (AUROC, caught at budget, decision latency)")
    routing.add_argument("--dataset", metavar="FILE.jsonl", help="one {\"prompt\": ..., \"answers\": [...]} per "
                                                                "line (default: Ember's built-in question set)")
    routing.add_argument("--model", help="small tier: library model or .gguf path (default: the chat model)")
    routing.add_argument("--split", choices=["test", "train", "all"], default="test",
                         help="items to report on (default: test; thresholds are calibrated on train)")
    routing.add_argument("--fit", action="store_true", help="refit the score models on the train split and "
                                                            "print them")
    routing.add_argument("--glimpse-tokens", type=int, default=2, help="answer tokens the glimpse decodes "
                                                                       "(default: 2)")
    routing.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    routing.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    routing.add_argument("--dump", metavar="FILE.jsonl", help="write every item's label and signals (the input "
                         "of python -m app.bench.fit_routing)")
    routing.add_argument("--online", action="store_true", help="replay the items as a stream of user labels "
                         "through the online learner and report AUROC and caught-at-budget over time")
    routing.add_argument("--replay", nargs="+", metavar="DUMP.jsonl", default=(), help="take items, labels and "
                         "signals from --dump files instead of answering again")
    routing.add_argument("--no-agreement", action="store_true", help="skip the cascade's sampled continuations")
    routing.set_defaults(func=_routing)

    loops = names.add_parser("loops", help="replies that loop to max_tokens with the loop check off and on, over "
                                           "40+ prompts at temperature 0 and at the default sampling")
    loops.add_argument("--model", help="library model or .gguf path (default: the chat model)")
    loops.add_argument("--prompts", metavar="FILE.jsonl", help="one {\"prompt\": ...} per line (default: the "
                                                               "built-in set)")
    loops.add_argument("--tokens", type=int, default=256, help="max_tokens of every reply (default: 256)")
    loops.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    loops.add_argument("--n-ctx", type=int, default=2048, help="context length (default: 2048)")
    loops.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    loops.set_defaults(func=_loops)

    iso = names.add_parser("isolation", help="how far logits move when the same tokens are evaluated on another "
                                             "path (batch shape, KV cells), per model type and attention kernel")
    iso.add_argument("--model", help="library model or .gguf path (default: the chat model)")
    iso.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    iso.add_argument("--n-ctx", type=int, default=2048, help="context length (default: 2048)")
    iso.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    iso.set_defaults(func=_isolation)


def _run(args: argparse.Namespace, bench: Callable[[Ember], dict[str, Any]],
         describe: Callable[[dict[str, Any]], str]) -> int:
    """Open Ember, run one benchmark, print its JSON (``--json``) or its readable summary."""
    core = Ember.open()
    try:
        result = bench(core)
        print(json.dumps(result) if args.json else describe(result))
        return 0
    finally:
        core.close()


def _decode(args: argparse.Namespace) -> int:
    from app.bench.decode import bench_decode, format_decode
    from app.bench.multiturn import bench_multiturn, format_multiturn

    say = None if args.json else _progress
    fa = {"auto": None, "on": True, "off": False}[args.flash_attn]
    if args.multiturn:
        return _run(args, lambda core: bench_multiturn(core, model=args.model, turns=args.turns,
                                                       threads=args.threads, n_ctx=args.n_ctx, flash_attn=fa,
                                                       progress=say), format_multiturn)
    return _run(args, lambda core: bench_decode(core, model=args.model, tokens=args.tokens, runs=args.runs,
                                                threads=args.threads, n_ctx=args.n_ctx, flash_attn=fa,
                                                native=args.native, busy=args.busy, busy_kind=args.busy_kind,
                                                progress=say), format_decode)


def _speculative(args: argparse.Namespace) -> int:
    from app.bench.speculative import bench_speculative, format_speculative

    return _run(args, lambda core: bench_speculative(
        core, model=args.model, draft=args.draft, lookup=args.lookup, prompts_file=args.prompts, tokens=args.tokens,
        threads=args.threads, n_ctx=args.n_ctx, target_quant=args.target_quant, max_draft=args.max_draft,
        progress=_progress), format_speculative)


def _api(args: argparse.Namespace) -> int:
    from app.bench.api import bench_api, format_api

    return _run(args, lambda core: bench_api(core, model=args.model, tokens=args.tokens, runs=args.runs,
                                             clients=args.clients, threads=args.threads, n_ctx=args.n_ctx,
                                             llama_server=args.llama_server,
                                             flash_attn={"auto": None, "on": True, "off": False}[args.flash_attn],
                                             progress=_progress), format_api)


def _routing(args: argparse.Namespace) -> int:
    from app.bench.routing import bench_routing, format_routing

    command = ("ember bench routing " + " ".join(sys.argv[sys.argv.index("routing") + 1:])
               if "routing" in sys.argv else "ember bench routing")
    return _run(args, lambda core: bench_routing(
        core, dataset=args.dataset, model=args.model, split=args.split, fit=args.fit, threads=args.threads,
        glimpse_tokens=args.glimpse_tokens, dump=args.dump, agreement=not args.no_agreement, online=args.online,
        replay=args.replay, progress=_progress, command=command.strip()),
        format_routing)


def _loops(args: argparse.Namespace) -> int:
    from app.bench.loops import bench_loops, format_loops
    from app.bench.speculative import load_prompts

    prompts = next(iter(load_prompts(args.prompts).values())) if args.prompts else None
    flags = [("--json", args.json), (f"--tokens {args.tokens}", args.tokens != 256),
             (f"--model {args.model}", args.model), (f"--prompts {args.prompts}", args.prompts),
             (f"--threads {args.threads}", args.threads), (f"--n-ctx {args.n_ctx}", args.n_ctx != 2048)]
    command = " ".join(["ember bench loops", *(flag for flag, given in flags if given)])
    return _run(args, lambda core: bench_loops(core, model=args.model, prompts=prompts, tokens=args.tokens,
                                               threads=args.threads, n_ctx=args.n_ctx, progress=_progress,
                                               command=command), format_loops)


def _isolation(args: argparse.Namespace) -> int:
    from app.bench.isolation import bench_isolation, format_isolation

    return _run(args, lambda core: bench_isolation(core, model=args.model, threads=args.threads, n_ctx=args.n_ctx,
                                                   progress=None if args.json else _progress), format_isolation)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
