"""What a chat turn sends beyond the plain messages: the MCP tools the model may call, earlier calls with their
results, and the text of attached files. Shared by :class:`app.services.chat.Turn` and the desktop's controllers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from inference.tools import ToolCall, ToolDef, ToolRequest
from storage.attachments import AttachmentStore
from storage.tool_calls import StoredCall, ToolCallStore

if TYPE_CHECKING:
    from app.core import Ember
    from app.services.mcp_client import McpTool
    from storage.conversations import Message

DENIED = "The user did not allow this call; it was not run."


@dataclass
class TurnExtras:
    """Tools for a turn and hooks :class:`app.services.chat.Turn` runs: ``on_user_stored(message)`` once the user's
    message is stored (before the prompt is built), and the reply's tool calls are stored by :meth:`calls_made`.
    ``tool_servers`` maps each tool name the model sees to the MCP server that has it."""

    tools: ToolRequest | None = None
    tool_servers: dict[str, str] = field(default_factory=dict)
    on_user_stored: Callable[["Message"], None] | None = None

    def calls_made(self, core: "Ember", reply: "Message", calls: Sequence[ToolCall]) -> list[StoredCall]:
        """Store the calls a reply made, waiting for the user's answer."""
        store = ToolCallStore(core.conversations.database)
        return [store.add(reply.conversation_id, reply.id, i, call_id=c.id, name=c.name,
                          server=self.tool_servers.get(c.name), arguments=c.arguments or "{}")
                for i, c in enumerate(calls)]


def tool_request(tools: Sequence["McpTool"], choice: str = "auto") -> tuple[ToolRequest | None, dict[str, str]]:
    """The engine's tool request for these MCP tools, and which server each name belongs to. A name two servers
    share is given as ``server_name`` for the second; a ``choice`` naming no tool falls back to ``auto``."""
    defs: list[ToolDef] = []
    servers: dict[str, str] = {}
    for t in tools:
        name = t.name if t.name not in servers else f"{t.server}_{t.name}"
        servers[name] = t.server
        schema = {k: v for k, v in (t.parameters or {}).items() if k != "title"} or {"type": "object"}
        defs.append(ToolDef(name, t.description, schema))
    if not defs:
        return None, {}
    names = {d.name for d in defs}
    if choice not in ("auto", "none", "required") and choice not in names:
        choice = "auto"
    return ToolRequest(tuple(defs), choice, parallel=False), servers


def model_messages(core: "Ember", messages: Sequence["Message"]) -> list[dict[str, Any]]:
    """The stored user and assistant messages as the model is sent them: a user message with its attached file
    text first, a reply with the calls it made followed by their results (``tool`` messages). Empty replies
    without calls are left out."""
    if not messages:
        return []
    calls = ToolCallStore(core.conversations.database).for_conversation(messages[0].conversation_id)
    contexts = AttachmentStore(core.conversations.database).contexts([m.id for m in messages if m.role == "user"])
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "user":
            ctx = contexts.get(m.id)
            out.append({"role": "user", "content": f"{ctx.text}\n\n{m.content}" if ctx else m.content})
            continue
        if m.role != "assistant":
            continue
        finished = [c for c in calls.get(m.id, []) if c.finished]
        if not m.content and not finished:
            continue
        msg: dict[str, Any] = {"role": "assistant", "content": m.content}
        if finished:
            msg["tool_calls"] = [{"id": c.call_id, "name": c.name, "arguments": _arguments(c.arguments)}
                                 for c in finished]
        out.append(msg)
        for c in finished:
            out.append({"role": "tool", "tool_call_id": c.call_id, "name": c.name,
                        "content": DENIED if c.state == "denied" else c.result})
    return out


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def merge(*parts: TurnExtras | None) -> TurnExtras | None:
    """One turn's extras from several sources (tools from one, the files' hook from another)."""
    given = [p for p in parts if p is not None]
    if not given:
        return None
    tools = next((p for p in given if p.tools is not None), None)
    hooks = [p.on_user_stored for p in given if p.on_user_stored is not None]

    def stored(message: "Message") -> None:
        for hook in hooks:
            hook(message)

    return TurnExtras(tools=tools.tools if tools else None, tool_servers=tools.tool_servers if tools else {},
                      on_user_stored=stored if hooks else None)
