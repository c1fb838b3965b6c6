"""``ember models ...``: the model library from the command line.

``list``, ``search``, ``files``, ``pull``, ``import``, ``rm``, ``info``, ``fit``, ``login``/``logout``; each
reading command takes ``--json`` and then prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.core import Ember
from models.downloads import Progress
from models.fit import FitResult, Machine, estimate_fit, library_fit, model_shape
from models.gguf import ArraySummary, read_gguf
from models.hub import TOKEN_SECRET
from models.library import LibraryModel
from models.quant import pick_model
from storage.errors import EmberError
from storage.sizes import GIB, format_bytes
from storage.secrets import delete_secret, set_secret


class UsageError(EmberError, ValueError):
    """A command was given arguments that do not fit together."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` command and its actions."""
    models = sub.add_parser("models", help="the model library")
    actions = models.add_subparsers(title="actions", metavar="ACTION")
    models.set_defaults(func=lambda a: (models.print_help(), 0)[1])

    def action(name: str, func: Any, help: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help, description=help)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)
        return p

    action("list", _list, "list installed models")

    p = action("search", _search, "search the Hub for GGUF model repositories")
    p.add_argument("query", nargs="?", default="", help="text the repository id contains")
    p.add_argument("--sort", choices=["downloads", "likes", "recent", "trending"], default="downloads")
    p.add_argument("--limit", type=int, default=20, help="results per page (default 20)")
    p.add_argument("--page", type=int, default=1, help="page number, from 1")

    p = action("files", _files, "list a repository's GGUF models (shards grouped) with size and quantisation")
    p.add_argument("repo_id", metavar="REPO_ID")
    p.add_argument("--revision", default="main")

    p = action("pull", _pull, "download a model, verify it and add it to the library (resumes if interrupted)")
    p.add_argument("repo_id", metavar="REPO_ID")
    _add_pick_flags(p)
    p.add_argument("--name", help="library name (default: from the file name)")
    p.add_argument("--revision", default="main")

    p = action("import", _import, "add a local GGUF file to the library (checked first)")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--name", help="library name (default: from the file name)")
    p.add_argument("--copy", action="store_true", help="copy the file into the library folder")

    p = action("rm", _rm, "remove a model (shows the space freed first)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    p = action("info", _info, "a library model's catalogue entry and GGUF metadata")
    p.add_argument("name", metavar="NAME", help="library name, alias or .gguf path")

    p = action("fit", _fit, "will a model fit this machine? (GPU / partial offload / CPU only / does not fit)")
    p.add_argument("model", metavar="REPO_ID_OR_NAME", help="a Hub repository, a library name or a .gguf path")
    _add_pick_flags(p)
    p.add_argument("--ctx", type=int, help="context length (default: the engine setting)")
    p.add_argument("--ram", type=float, help="assume this many GiB of free RAM")
    p.add_argument("--vram", type=float, help="assume this many GiB of free VRAM")
    p.add_argument("--no-gpu", action="store_true", help="estimate for the CPU alone")
    p.add_argument("--revision", default="main")

    p = action("login", _login, "store a Hub access token in the OS keyring (for gated and private models)",
               json_flag=False)
    p.add_argument("--token", help="the token (default: read from stdin or asked for)")
    action("logout", _logout, "remove the stored Hub token", json_flag=False)


def _add_pick_flags(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--file", help="the GGUF file (a split model's name or any of its shards)")
    which.add_argument("--quant", help="the quantisation, e.g. Q4_K_M (default: Q4_K_M, else the smallest)")


# --- commands ------------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    core = Ember.open()
    try:
        models = core.library.list()
        if args.json:
            _print_json([_model_dict(m) for m in models])
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


def _search(args: argparse.Namespace) -> int:
    from app.services.models import hub_client

    if args.limit < 1 or args.page < 1:
        raise UsageError("--limit and --page must be 1 or more.")
    hits = hub_client().search(args.query, sort=args.sort, limit=args.limit, offset=(args.page - 1) * args.limit)
    if args.json:
        _print_json([h.__dict__ for h in hits])
        return 0
    if not hits:
        print(f"No GGUF repositories match {args.query!r}.")
    for h in hits:
        flags = " [gated]" if h.gated else ""
        print(f"{h.repo_id}{flags}  downloads {h.downloads or 0}  likes {h.likes or 0}")
    return 0


def _files(args: argparse.Namespace) -> int:
    from app.services.models import hub_client

    repo = hub_client().files(args.repo_id, revision=args.revision)
    if args.json:
        _print_json({"repo_id": repo.repo_id, "commit": repo.commit, "gated": repo.gated, "models": [
            {"name": m.name, "quant": m.quant, "size": m.size, "shards": m.shard_count, "complete": m.complete,
             "files": [f.__dict__ for f in m.files]} for m in repo.models]})
        return 0
    if not repo.models:
        print(f"{repo.repo_id} has no GGUF files.")
    for m in repo.models:
        shards = f"  ({len(m.files)} of {m.shard_count} shards)" if m.shard_count > 1 else ""
        print(f"{m.name}  {m.quant or '?'}  {format_bytes(m.size)}{shards}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from app.services.models import download_manager, hub_client

    hub = hub_client()
    repo = hub.files(args.repo_id, revision=args.revision)
    chosen = _pick(repo.models, args)
    if not chosen.complete:
        raise EmberError(f"{chosen.name} in {repo.repo_id} is missing shards ({len(chosen.files)} of "
                         f"{chosen.shard_count} present); it cannot be used.")
    core = Ember.open()
    try:
        manager = download_manager(core, hub=hub)
        dl = manager.enqueue(repo.repo_id, chosen, revision=repo.commit, name=args.name)
        have = manager.bytes_on_disk(dl)
        if have:
            print(f"Resuming {chosen.name}: {format_bytes(have)} of {format_bytes(dl.total)} already here.",
                  file=sys.stderr)
        reporter = _ProgressLine(chosen.name)
        try:
            model = manager.run(dl.id, on_progress=reporter)
        except KeyboardInterrupt:
            reporter.end()
            print(f"Paused. Run the same command again to resume {chosen.name}.", file=sys.stderr)
            return 130
        reporter.end()
        if args.json:
            _print_json(_model_dict(model))
        else:
            print(f"Added {model.name} ({format_bytes(model.size)}, sha256 verified) from {repo.repo_id}.")
        return 0
    finally:
        core.close()


def _import(args: argparse.Namespace) -> int:
    core = Ember.open()
    try:
        model = core.library.import_file(Path(args.path), name=args.name,
                                         copy_into=core.paths.models / "imported" if args.copy else None)
        if args.json:
            _print_json(_model_dict(model))
        else:
            print(f"Added {model.name} ({model.quantization or '?'}, {format_bytes(model.size)}) from {model.path}.")
        return 0
    finally:
        core.close()


def _rm(args: argparse.Namespace) -> int:
    core = Ember.open()
    try:
        plan = core.library.plan_delete(args.name, library_dir=core.paths.models)
        lines = [f"Removing {plan.model.name} frees {format_bytes(plan.freed)}."]
        lines += [f"  delete {p}" for p in plan.delete]
        lines += [f"  keep   {p} (imported from outside the library; only un-listed)" for p in plan.keep]
        if not args.json:
            print("\n".join(lines))
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(f"Not removing {plan.model.name}: confirm with --yes.")
            if input("Remove? [y/N] ").strip().lower() not in ("y", "yes"):
                print("Nothing removed.")
                return 1
        core.library.delete(plan)
        if args.json:
            _print_json({"name": plan.model.name, "freed": plan.freed, "deleted": [str(p) for p in plan.delete],
                         "kept": [str(p) for p in plan.keep]})
        else:
            print(f"Removed {plan.model.name}.")
        return 0
    finally:
        core.close()


def _info(args: argparse.Namespace) -> int:
    core = Ember.open()
    try:
        model = core.library.resolve(args.name)
        info = read_gguf(model.path)
        metadata = {k: _plain(v) for k, v in info.metadata.items()}
        if args.json:
            _print_json({**_model_dict(model), "gguf_version": info.version, "tensors": len(info.tensors),
                         "metadata": metadata})
            return 0
        for key, value in _model_dict(model).items():
            print(f"{key:18} {value}")
        print(f"{'gguf_version':18} {info.version}")
        print(f"{'tensors':18} {len(info.tensors)}")
        print("metadata:")
        for key, value in metadata.items():
            text = value if isinstance(value, str) else json.dumps(value)
            print(f"  {key}: {text if len(text) < 200 else text[:197] + '...'}")
        return 0
    finally:
        core.close()


def _fit(args: argparse.Namespace) -> int:
    from app.services.models import hub_client, machine

    core = Ember.open()
    try:
        ctx = args.ctx or core.settings.engine.n_ctx
        here = machine(core, ram=_gib_arg(args.ram), vram=_gib_arg(args.vram), no_gpu=args.no_gpu)
        result, source = _fit_for(core, args, hub_client, here, ctx=ctx, n_batch=core.settings.engine.n_batch)
        if args.json:
            _print_json({"model": source, **result.to_dict()})
        else:
            print(f"{source}: {result.summary()}")
            _print_breakdown(result, here)
        return 0
    finally:
        core.close()


def _login(args: argparse.Namespace) -> int:
    token = args.token
    if not token:
        token = getpass.getpass("Hub token: ") if sys.stdin.isatty() else sys.stdin.readline()
    token = token.strip()
    if not token:
        raise UsageError("No token given. Create a read token in your Hub account settings and pass it.")
    set_secret(TOKEN_SECRET, token)
    print("Hub token stored in the OS keyring.")
    return 0


def _logout(args: argparse.Namespace) -> int:
    delete_secret(TOKEN_SECRET)
    print("Hub token removed.")
    return 0


# --- helpers -------------------------------------------------------------------------------------------------


def _pick(models: list, args: argparse.Namespace):
    try:
        return pick_model(models, file=args.file, quant=args.quant)
    except LookupError as exc:
        raise UsageError(f"{args.repo_id if hasattr(args, 'repo_id') else args.model}: {exc}") from None


def _fit_for(core: Ember, args: argparse.Namespace, hub_client: Any, here: Machine, *, ctx: int,
             n_batch: int) -> tuple[FitResult, str]:
    """The estimate for a library model or local file (as the library page's, :func:`models.fit.library_fit`), or
    for a Hub file whose header is read with a ranged read; and the name it is for."""
    is_file = args.model.endswith(".gguf") or Path(args.model).expanduser().is_file()
    if is_file or "/" not in args.model:  # a library name or a local file; else owner/name on the Hub
        local = core.library.resolve(args.model)
        return library_fit(local, here, ctx=ctx, n_batch=n_batch), local.name
    hub = hub_client()
    repo = hub.files(args.model, revision=args.revision)
    chosen = _pick(repo.models, args)
    info, _ = hub.read_header(repo.repo_id, chosen.first.path, revision=repo.commit)
    shape = model_shape(info, weights=chosen.size or 0, name=chosen.name)
    return estimate_fit(shape, here, ctx=ctx, n_batch=n_batch), f"{repo.repo_id}/{chosen.name}"


def _print_breakdown(r: FitResult, here: Machine) -> None:
    n = r.need
    size = format_bytes
    print(f"  weights {size(n.weights)}  KV cache {size(n.kv_cache)}  compute {size(n.compute)}  "
          f"overhead {size(n.overhead)}  total {size(n.total)}")
    held = f" (incl. {size(here.held_ram + here.held_vram)} held by the loaded model)" \
        if here.held_ram or here.held_vram else ""
    vram = "no GPU" if r.vram_available is None else f"VRAM free {size(r.vram_available)}"
    print(f"  RAM free {size(r.ram_available)}  {vram}{held}")


class _ProgressLine:
    """Download progress on stderr: one rewritten line on a terminal, a line every 10% otherwise."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tty = sys.stderr.isatty()
        self._last = 0.0
        self._decile = -1
        self._shown = False

    def __call__(self, p: Progress) -> None:
        pct = 100 * p.done / p.total if p.total else 100.0
        eta = f"ETA {time.strftime('%H:%M:%S', time.gmtime(p.eta))}" if p.eta is not None else "ETA ?"
        size = format_bytes
        line = f"{self._name}: {size(p.done)} / {size(p.total)} ({pct:.0f}%)  {size(int(p.rate))}/s  {eta}"
        if self._tty:
            now = time.monotonic()
            if now - self._last >= 0.2 or p.done == p.total:
                print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
                self._last, self._shown = now, True
        elif int(pct // 10) > self._decile:
            self._decile = int(pct // 10)
            print(line, file=sys.stderr, flush=True)

    def end(self) -> None:
        if self._tty and self._shown:
            print(file=sys.stderr)


def _model_dict(m: LibraryModel) -> dict[str, Any]:
    d = dict(m.__dict__)
    d["path"] = str(m.path)
    d["aliases"] = list(m.aliases)
    return d


def _plain(value: Any) -> Any:
    if isinstance(value, ArraySummary):
        return f"<array of {value.length} items>"
    return value


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _gib_arg(value: float | None) -> int | None:
    return None if value is None else int(value * GIB)
