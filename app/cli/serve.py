"""``ember serve``: the engine and the local API with no GUI, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from app.cli.setting_flags import add_flags
from app.settings import ApiSettings

# The API settings ``ember serve`` takes as flags for this run (declared in app.settings.ApiSettings; --no-auth is
# only allowed on a loopback address, as the setting is).
SERVE_FLAGS = ["host", "port", "auth"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command."""
    serve = sub.add_parser("serve", help="run the local OpenAI/Ollama-compatible API without a GUI")
    add_flags(serve, ApiSettings, SERVE_FLAGS, dest_prefix="api_")  # --host, --port, --auth/--no-auth
    serve.add_argument("--model", "-m", help="load this library model before serving (default: on first request)")
    serve.add_argument("--regenerate-token", action="store_true", help="make a new API token before starting")
    serve.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from app.api.server import ApiServer
    from app.api.token import regenerate_token
    from app.core import Ember

    core = Ember.open()
    server = None
    try:
        if args.regenerate_token:
            regenerate_token(core.paths.home)
        if args.model:
            core.engine.load(core.model_spec(args.model)).wait()
        server = ApiServer(core, host=args.api_host, port=args.api_port, auth=args.api_auth).start()
        print(f"Ember API on {server.address}  (OpenAI: {server.address}/v1, Ollama: {server.address})",
              file=sys.stderr, flush=True)
        if server.token is not None:
            print(f"API token ({_where(server.token.source)}): {server.token.value}", file=sys.stderr)
            print(f"  use: Authorization: Bearer {server.token.value}", file=sys.stderr, flush=True)
        else:
            print("Authentication is OFF: any program on this machine can use the API.", file=sys.stderr,
                  flush=True)
        print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
        server.wait()
        return 0
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
        return 0
    finally:
        if server is not None:
            server.stop()
        core.close()


def _where(source: str) -> str:
    if source in ("keyring", "environment", "given"):
        return f"from the {source}" if source != "given" else "given"
    return f"stored in {source}"
