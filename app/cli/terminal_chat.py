"""The terminal chat: a one-shot answer, or an interactive session with history."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from app.services.chat import Turn, context_notice, new_conversation
from app.services.route_explain import router_line
from app.core import Ember
from inference.engine import ModelSpec
from inference.events import Failed, Retracted, TokenText
from inference.sampling import SamplingOptions

if TYPE_CHECKING:
    from app.routing import RouteRequest

_shown_plan: list[object] = [None]  # the load plan printed last (printed once per load)

HELP = """Commands:
  /new    start a new conversation
  /exit   leave (Ctrl+D works too)
  /help   this text
  /large MESSAGE   answer with the large tier (when a router tier is configured)
  /large           ask the large tier the previous question again (the router learns the small answer fell short)
Ctrl+C stops a reply that is being written."""


def one_shot(core: Ember, prompt: str, *, spec: ModelSpec, options: SamplingOptions, system: str | None,
             conversation_id: int | None, verbose: bool, out: TextIO = sys.stdout,
             route: RouteRequest | None = None) -> int:
    """Answer one prompt, streaming to ``out``, and store the exchange; returns the exit code."""
    if conversation_id is None:
        conversation_id = new_conversation(core, model=spec.name, system_prompt=system, sampling=options).id
    try:
        _stream_turn(core, conversation_id, prompt, spec=spec, options=options, verbose=verbose, out=out,
                     route=route)
    except KeyboardInterrupt:
        return 130
    return 0


def interactive(core: Ember, *, spec: ModelSpec, options: SamplingOptions, system: str | None,
                conversation_id: int | None, verbose: bool, out: TextIO = sys.stdout,
                route: RouteRequest | None = None) -> int:
    """Chat until /exit or end of input; Ctrl+C stops the current reply."""
    try:
        import readline  # noqa: F401 - line editing and history for input()
    except ImportError:
        pass
    print(f"Ember chat with {spec.name}. Type /help for commands.", file=out, flush=True)
    if conversation_id is None:
        conversation_id = new_conversation(core, model=spec.name, system_prompt=system, sampling=options).id
    while True:
        try:
            line = input("> ")
        except EOFError:
            print(file=out)
            return 0
        except KeyboardInterrupt:
            print(file=out)
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/help":
            print(HELP, file=out)
            continue
        if text == "/new":
            conversation_id = new_conversation(core, model=spec.name, system_prompt=system, sampling=options).id
            print("(new conversation)", file=out)
            continue
        try:
            _stream_turn(core, conversation_id, text, spec=spec, options=options, verbose=verbose, out=out,
                         route=route)
        except KeyboardInterrupt:
            print("\n(stopped)", file=out)


# What a finish reason means, where the word alone may puzzle (printed with --verbose).
_FINISH_NOTES = {"repetition": " (the reply was repeating itself; --no-stop-loops lets such replies go on)"}


def _stream_turn(core: Ember, conversation_id: int, text: str, *, spec: ModelSpec, options: SamplingOptions,
                 verbose: bool, out: TextIO, route: RouteRequest | None = None) -> None:
    """Run one turn, printing the reply as it streams. Ctrl+C cancels the reply (kept as far as it got)
    and is re-raised once the engine has stopped.

    On a terminal a ``cascade`` streams the small model's answer too; when the router escalates, a line says the
    answer was withdrawn and the large model's answer follows (only that one is stored). Piped output gets the
    kept answer alone.
    """
    turn = Turn(core, conversation_id, text, spec=spec, options=options, route=route,
                stream_cascade=_is_terminal(out))
    interrupted = False
    events = turn.events()
    while True:
        try:
            event = next(events, None)
        except KeyboardInterrupt:
            turn.cancel()
            interrupted = True
            continue
        if event is None:
            break
        if isinstance(event, TokenText):
            out.write(event.text)
            out.flush()
        elif isinstance(event, Retracted):
            out.write(f"\n[answer withdrawn. {event.reason}]\n")
            out.flush()
        elif isinstance(event, Failed):
            out.write("\n")
            out.flush()
            turn.wait()  # raises the engine's error through the one error path
    out.write("\n")
    out.flush()
    result = turn.wait()
    routed = result.stats.router or {}
    if routed.get("error"):
        print(f"ember: the large tier failed, so the small model answered: {routed['error']}", file=sys.stderr)
    if verbose and routed:
        print(f"[{router_line(routed)}; {routed['model']} answered, decision {routed['decision_ms']:.0f} ms]",
              file=sys.stderr)
    if verbose:
        plan = core.engine.load_plan
        if plan is not None and plan is not _shown_plan[0]:
            print(f"[load plan: {plan.summary()}]", file=sys.stderr)
            _shown_plan[0] = plan
        s = result.stats
        print(f"[{spec.name}: {s.completion_tokens} tokens, {s.tokens_per_s:.1f} tok/s, "
              f"TTFT {s.ttft_ms:.0f} ms, prompt {s.prompt_tokens} tokens ({s.cached_tokens} cached), "
              f"finish: {s.finish_reason}{_FINISH_NOTES.get(s.finish_reason, '')}]", file=sys.stderr)
        if s.speculative:
            print(f"[{s.speculative}: {s.accepted}/{s.drafted} drafted tokens accepted, "
                  f"draft {s.draft_ms:.0f} ms, verify {s.verify_ms:.0f} ms]", file=sys.stderr)
    notice = context_notice(core, conversation_id)
    if notice:
        print(f"({notice})", file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt


def _is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or minimal stream
        return False
