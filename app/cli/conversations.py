"""``ember conversations ...`` and ``ember presets ...``: stored chats and system-prompt presets from the command line.

``conversations list|export|import|recover``: export writes Ember JSON (every version, stats) or Markdown (the
branch shown); import reads either back as a new conversation. ``list`` and ``export`` still work when the database
cannot be written (a full disk, a read-only file): they open it read-only and say so. ``recover`` copies what SQLite
can still read of a damaged database into a new one and keeps the damaged file beside it.
``presets list|show|save|rm``: the named system prompts the desktop offers and ``ember chat --preset NAME`` uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from app.core import Ember
from app.paths import Paths
from storage.conversation_files import export_json, export_markdown, import_file, write_export
from storage.conversations import ConversationStore
from storage.database import close_database, open_read_only
from storage.errors import DatabaseLockedError, DiskFullError, ReadOnlyDatabaseError
from storage.presets import PresetStore
from storage.recovery import damage, recover_in_place


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``conversations`` and ``presets`` commands and their actions."""
    conversations = sub.add_parser("conversations", help="stored conversations: list, export, import, recover")
    actions = conversations.add_subparsers(title="actions", metavar="ACTION")
    conversations.set_defaults(func=lambda a: (conversations.print_help(), 0)[1])
    p = actions.add_parser("list", help="list conversations, most recent first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_list)
    p = actions.add_parser("export", help="write a conversation to a file: Markdown (.md, the branch shown) or "
                                          "Ember JSON (every version and its stats)")
    p.add_argument("id", type=int, metavar="ID", help="the conversation's id (see `ember conversations list`)")
    p.add_argument("file", metavar="FILE", help="where to write it ('-': standard output)")
    p.add_argument("--format", choices=["markdown", "json"], help="default: from FILE's suffix (.md is "
                                                                   "Markdown, anything else JSON)")
    p.set_defaults(func=_export)
    p = actions.add_parser("import", help="read an exported conversation (Ember JSON or Ember Markdown) as a new "
                                          "conversation")
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(func=_import)
    p = actions.add_parser("recover", help="copy what can still be read of a damaged database into a new one "
                                           "(the damaged file is kept beside it)")
    p.add_argument("--force", action="store_true", help="recover even when SQLite's integrity check passes")
    p.set_defaults(func=_recover)

    presets = sub.add_parser("presets", help="system-prompt presets (shared with the desktop; ember chat --preset)")
    actions = presets.add_subparsers(title="actions", metavar="ACTION")
    presets.set_defaults(func=lambda a: (presets.print_help(), 0)[1])
    p = actions.add_parser("list", help="list presets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_presets_list)
    p = actions.add_parser("show", help="print a preset's prompt")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_presets_show)
    p = actions.add_parser("save", help="create or overwrite a preset")
    p.add_argument("name", metavar="NAME")
    p.add_argument("prompt", metavar="PROMPT", help="the system prompt ('-' reads standard input)")
    p.set_defaults(func=_presets_save)
    p = actions.add_parser("rm", help="delete a preset")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_presets_rm)


def _with_core(fn: Any) -> int:
    core = Ember.open()
    try:
        return fn(core)
    finally:
        core.close()


def _reading(fn: Callable[[ConversationStore], int]) -> int:
    """Run ``fn`` on the conversations; when the database cannot be written now (a full disk, a read-only or
    locked file), say so and run it on the database opened read-only."""
    try:
        core = Ember.open()
    except (DiskFullError, ReadOnlyDatabaseError, DatabaseLockedError) as exc:
        print(f"ember: {exc}\nember: reading the conversations read-only.", file=sys.stderr)
        db = open_read_only(Paths.from_env().database)
        try:
            return fn(ConversationStore(db))
        finally:
            close_database(db)
    try:
        return fn(core.conversations)
    finally:
        core.close()


def _list(args: argparse.Namespace) -> int:
    def run(store: ConversationStore) -> int:
        rows = [{"id": c.id, "title": c.title, "updated": c.updated, "model": c.model,
                 "messages": len(store.messages(c.id))} for c in store.list()]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            print(f"{r['id']:>5}  {r['updated'][:16].replace('T', ' ')}  {r['messages']:>3} msgs  {r['title']}")
        if not rows:
            print("No conversations yet.", file=sys.stderr)
        return 0
    return _reading(run)


def _export(args: argparse.Namespace) -> int:
    def run(store: ConversationStore) -> int:
        if args.file == "-":
            if args.format == "markdown":
                sys.stdout.write(export_markdown(store, args.id))
            else:
                print(json.dumps(export_json(store, args.id), indent=2, ensure_ascii=False))
            return 0
        path = write_export(store, args.id, Path(args.file), fmt=args.format)
        print(f"wrote {path}", file=sys.stderr)
        return 0
    return _reading(run)


def _recover(args: argparse.Namespace) -> int:
    """``ember conversations recover``: the database is not opened as a store (it may be damaged)."""
    path = Paths.from_env().database
    if not path.is_file():
        print(f"ember: there is no database at {path}; nothing to recover.", file=sys.stderr)
        return 1
    reason = damage(path)
    if reason is None and not args.force:
        print(f"The database {path} is not damaged (SQLite's integrity check passes); nothing to recover. "
              "(--force recovers it anyway.)")
        return 0
    if reason is not None:
        print(f"{path} is damaged ({reason}); recovering what can still be read…", file=sys.stderr)
    print(recover_in_place(path).summary())
    return 0


def _import(args: argparse.Namespace) -> int:
    def run(core: Ember) -> int:
        conv = import_file(core.conversations, args.file)
        count = len(core.conversations.all_messages(conv.id))
        print(f"imported “{conv.title}” as conversation {conv.id} ({count} messages); continue it with "
              f"`ember chat --conversation {conv.id}`")
        return 0
    return _with_core(run)


def _presets_list(args: argparse.Namespace) -> int:
    def run(core: Ember) -> int:
        presets = PresetStore(core.db).list()
        if args.json:
            print(json.dumps([{"name": p.name, "prompt": p.prompt, "updated": p.updated} for p in presets],
                             indent=2, ensure_ascii=False))
            return 0
        for p in presets:
            first = " ".join(p.prompt.split())
            print(f"{p.name}: {first[:70] + '…' if len(first) > 70 else first}")
        if not presets:
            print("No presets yet: `ember presets save NAME PROMPT` adds one.", file=sys.stderr)
        return 0
    return _with_core(run)


def _presets_show(args: argparse.Namespace) -> int:
    return _with_core(lambda core: (print(PresetStore(core.db).get(args.name).prompt), 0)[1])


def _presets_save(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt

    def run(core: Ember) -> int:
        preset = PresetStore(core.db).save(args.name, prompt)
        print(f"saved preset {preset.name!r}", file=sys.stderr)
        return 0
    return _with_core(run)


def _presets_rm(args: argparse.Namespace) -> int:
    def run(core: Ember) -> int:
        PresetStore(core.db).delete(args.name)
        print(f"deleted preset {args.name!r}", file=sys.stderr)
        return 0
    return _with_core(run)
