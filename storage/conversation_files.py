"""Export a conversation to Markdown or Ember JSON, and import either back.

Ember JSON keeps everything: the conversation's settings, every message with its stats, every version (the tree of
``parent`` links) and the branch shown. Markdown is for reading: the branch shown, one section per message, with
the stats of each reply; hidden ``<!-- ember:message {...} -->`` markers let Ember import it back (that branch only).
An import checks the whole file first and writes nothing when any part is wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from storage.conversations import ROLES, Conversation, ConversationStore, now_iso
from storage.errors import EmberError
from storage.interrupted import INTERRUPTED

FORMAT = "ember-conversation"
FORMAT_VERSION = 1
LARGEST_FILE = 64 << 20  # bytes; a conversation file larger than this is refused before it is read

_MARKER = re.compile(r"^<!-- ember:message (.*) -->$", re.MULTILINE)
_TITLE = re.compile(r"^# (.+)$", re.MULTILINE)


class ConversationFileError(EmberError, ValueError):
    """A file to import is not a conversation Ember can read; the message says what is wrong."""


# -- export ------------------------------------------------------------------------------------------------------


def export_json(store: ConversationStore, conversation_id: int) -> dict[str, Any]:
    """The conversation as an Ember JSON document (every version, stats and settings)."""
    conv = store.get(conversation_id)
    messages = [{"id": m.id, "parent": m.parent_id, "role": m.role, "content": m.content, "created": m.created,
                 "model": m.model, "stats": m.stats} for m in store.all_messages(conversation_id)]
    return {"format": FORMAT, "version": FORMAT_VERSION, "exported": now_iso(),
            "conversation": {"title": conv.title, "created": conv.created, "updated": conv.updated,
                             "model": conv.model, "settings": conv.settings},
            "messages": messages, "shown": conv.leaf_id}


def export_markdown(store: ConversationStore, conversation_id: int) -> str:
    """The branch shown as Markdown: a title, the system prompt, then each message with its reply stats."""
    conv = store.get(conversation_id)
    versions = store.versions(conversation_id)
    lines = [f"# {' '.join(conv.title.split()) or 'Conversation'}", ""]
    lines.append(_comment("conversation", {"model": conv.model, "settings": conv.settings,
                                           "created": conv.created}))
    system = conv.settings.get("system_prompt")
    if system:
        lines += ["", "> **System prompt:** " + "\n> ".join(str(system).splitlines())]
    for m in store.messages(conversation_id):
        lines += ["", _comment("message", {"role": m.role, "model": m.model, "created": m.created,
                                           "stats": m.stats})]
        who = {"user": "You", "system": "System"}.get(m.role) or (m.model or "Assistant")
        version = versions.get(m.id)
        note = f" (version {version.index} of {version.count})" if version and version.count > 1 else ""
        lines.append(f"### {who}{note}")
        summary = stats_summary(m.stats) if m.role == "assistant" else ""
        if summary:
            lines += ["", f"*{summary}*"]
        lines += ["", m.content.strip()]
    return "\n".join(lines).rstrip() + "\n"


def stats_summary(stats: dict[str, Any]) -> str:
    """A one-line summary of a reply's stats (tokens, speed, first token, how it ended); "" without stats."""
    parts = []
    if isinstance(stats.get("completion_tokens"), int):
        parts.append(f"{stats['completion_tokens']} tokens")
    if isinstance(stats.get("tokens_per_s"), (int, float)):
        parts.append(f"{stats['tokens_per_s']:.1f} tok/s")
    if isinstance(stats.get("ttft_ms"), (int, float)):
        parts.append(f"first token {stats['ttft_ms']:.0f} ms")
    if stats.get("finish_reason") == INTERRUPTED:  # said even without figures: it is why the reply is short
        parts.append("interrupted: Ember stopped before the reply ended")
    elif stats.get("finish_reason") and parts:
        parts.append(f"finish: {stats['finish_reason']}")
    return " · ".join(parts)


def write_export(store: ConversationStore, conversation_id: int, path: Path, *, fmt: str | None = None) -> Path:
    """Write the conversation to ``path`` as ``fmt`` (``markdown`` or ``json``; default: from the suffix, .md
    being Markdown and anything else JSON). The file is replaced only once it is written whole.

    Raises:
        StorageError: the file cannot be written.
    """
    from storage.errors import StorageError

    fmt = fmt or ("markdown" if path.suffix.lower() in (".md", ".markdown") else "json")
    if fmt == "markdown":
        text = export_markdown(store, conversation_id)
    elif fmt == "json":
        text = json.dumps(export_json(store, conversation_id), indent=2, ensure_ascii=False) + "\n"
    else:
        raise ValueError(f"fmt must be 'markdown' or 'json', not {fmt!r}")
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    return path


# -- import ------------------------------------------------------------------------------------------------------


def import_file(store: ConversationStore, path: Path) -> Conversation:
    """Read an Ember JSON or Markdown export and store it as a new conversation.

    Raises:
        ConversationFileError: the file is missing, too large, not UTF-8 text, or not a conversation Ember wrote
            (the message names the first problem); nothing is stored.
    """
    try:
        size = path.stat().st_size
        if size > LARGEST_FILE:
            raise ConversationFileError(f"{path.name} is {size / 2**20:.0f} MiB; a conversation file can be at "
                                        f"most {LARGEST_FILE >> 20} MiB.")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConversationFileError(f"{path.name} is not UTF-8 text, so it is not an Ember export.") from exc
    except OSError as exc:
        raise ConversationFileError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return import_text(store, text, name=path.name)


def import_text(store: ConversationStore, text: str, *, name: str = "the file") -> Conversation:
    """Store an Ember JSON or Markdown export (given as text) as a new conversation; see :func:`import_file`."""
    if text.lstrip().startswith("{"):
        rows = _parse_json(text, name)
    else:
        rows = _parse_markdown(text, name)
    try:
        return store.restore(**rows)
    except (ValueError, KeyError, TypeError) as exc:  # checked above; kept as a clear error all the same
        raise ConversationFileError(f"{name} could not be imported: {exc}.") from exc


def _parse_json(text: str, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConversationFileError(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                                    f"{exc.msg}).") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConversationFileError(f"{name} is JSON but not an Ember conversation (its \"format\" is not "
                                    f"{FORMAT!r}).")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise ConversationFileError(f"{name}: \"version\" must be a whole number from 1.")
    if version > FORMAT_VERSION:
        raise ConversationFileError(f"{name} was written by a newer Ember (format version {version}; this one "
                                    f"reads up to {FORMAT_VERSION}). Update Ember to import it.")
    conv = _field(doc, "conversation", dict, name)
    title = _field(conv, "title", str, f"{name}: conversation")
    settings = conv.get("settings", {})
    if not isinstance(settings, dict):
        raise ConversationFileError(f"{name}: conversation.settings must be an object.")
    model = conv.get("model")
    if model is not None and not isinstance(model, str):
        raise ConversationFileError(f"{name}: conversation.model must be text or null.")
    messages = _field(doc, "messages", list, name)
    index: dict[Any, int] = {}
    rows: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"{name}: messages[{i}]"
        if not isinstance(m, dict):
            raise ConversationFileError(f"{where} must be an object.")
        mid = m.get("id")
        if not isinstance(mid, int) or isinstance(mid, bool) or mid in index:
            raise ConversationFileError(f"{where}.id must be a whole number used by no other message.")
        parent = m.get("parent")
        if parent is not None and parent not in index:
            raise ConversationFileError(f"{where}.parent ({parent!r}) must be the id of an earlier message or null.")
        rows.append(_message_row(m, where, parent=None if parent is None else index[parent]))
        index[mid] = i
    shown = doc.get("shown")
    if shown is not None and shown not in index:
        raise ConversationFileError(f"{name}: \"shown\" ({shown!r}) must be the id of one of its messages or null.")
    stamp = now_iso()
    return {"title": title, "model": model, "settings": settings, "created": _text(conv, "created", stamp),
            "updated": _text(conv, "updated", stamp), "messages": rows,
            "leaf": None if shown is None else index[shown]}


def _parse_markdown(text: str, name: str) -> dict[str, Any]:
    markers = list(_MARKER.finditer(text))
    if not markers:
        raise ConversationFileError(f"{name} is not an Ember export: it is neither Ember JSON nor Markdown with "
                                    "Ember's <!-- ember:message --> markers. Import a file Ember exported.")
    title_match = _TITLE.search(text, 0, markers[0].start())
    header = re.search(r"^<!-- ember:conversation (\{.*\}) -->$", text[: markers[0].start()], re.MULTILINE)
    meta = _marker_json(header.group(1), f"{name}: the conversation marker") if header else {}
    settings = meta.get("settings", {})
    if not isinstance(settings, dict):
        raise ConversationFileError(f"{name}: the conversation marker's settings must be an object.")
    rows: list[dict[str, Any]] = []
    for i, marker in enumerate(markers):
        where = f"{name}: message {i + 1}"
        meta_m = _marker_json(marker.group(1), where)
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        body = text[marker.end():end].strip("\n").split("\n")
        if not body or not body[0].startswith("### "):
            raise ConversationFileError(f"{where} has no '### ' heading under its marker.")
        body = body[1:]
        summary = stats_summary(meta_m.get("stats") or {}) if meta_m.get("role") == "assistant" else ""
        while body and not body[0].strip():
            body = body[1:]
        if summary and body and body[0].strip() == f"*{summary}*":
            body = body[1:]
        meta_m["content"] = "\n".join(body).strip()
        rows.append(_message_row(meta_m, where, parent=i - 1 if i else None))
    stamp = now_iso()
    model = meta.get("model")
    return {"title": title_match.group(1).strip() if title_match else "Imported chat",
            "model": model if isinstance(model, str) else None, "settings": settings,
            "created": _text(meta, "created", stamp), "updated": stamp, "messages": rows, "leaf": len(rows) - 1}


def _message_row(m: dict[str, Any], where: str, *, parent: int | None) -> dict[str, Any]:
    role = m.get("role")
    if role not in ROLES:
        raise ConversationFileError(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}.")
    content = m.get("content")
    if not isinstance(content, str):
        raise ConversationFileError(f"{where}.content must be text.")
    stats = m.get("stats") or {}
    if not isinstance(stats, dict):
        raise ConversationFileError(f"{where}.stats must be an object.")
    model = m.get("model")
    if model is not None and not isinstance(model, str):
        raise ConversationFileError(f"{where}.model must be text or null.")
    return {"role": role, "content": content, "created": _text(m, "created", now_iso()), "model": model,
            "stats": stats, "parent": parent}


def _field(doc: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        what = {dict: "an object", list: "a list"}.get(kind, "text")
        raise ConversationFileError(f"{where}: \"{key}\" is missing or not {what}.")
    return value


def _text(doc: dict[str, Any], key: str, default: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) and value else default


def _comment(kind: str, data: dict[str, Any]) -> str:
    """A hidden marker; "-->" can only occur inside JSON strings, where it is escaped."""
    body = json.dumps(data, ensure_ascii=False).replace("-->", "--\\u003e")
    return f"<!-- ember:{kind} {body} -->"


def _marker_json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConversationFileError(f"{where}: its <!-- ember: --> marker is damaged ({exc.msg}).") from exc
    if not isinstance(data, dict):
        raise ConversationFileError(f"{where}: its <!-- ember: --> marker is not an object.")
    return data
