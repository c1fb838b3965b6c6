"""MCP tools in the chat window: which servers a conversation uses, their tools for each turn, the cards that ask
before a call runs, the calls themselves (on the MCP thread) and the reply that continues with their results."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal

from app.services.chat_extras import TurnExtras, tool_request
from app.services.mcp_client import McpHub, McpTool
from app.services.mcp_servers import parse_servers
from app.settings import Settings
from app.services.surface import Core
from storage.conversations import Conversation, Message
from storage.errors import EmberError
from storage.tool_calls import StoredCall, ToolCallStore
from ui.tool_call_card import ToolCallCard

log = logging.getLogger(__name__)

MAX_ROUNDS = 5  # replies in a row that may call tools before the model must answer in words


class ChatTools(QObject):
    """The MCP side of the chat (one per window); :meth:`extras` gives a turn its tools.

    Signals:
        toolsChanged(): a server's tool list arrived or failed; menus update.
        callFinished(call_row_id): a call ran (or failed) and its card shows the result.
        error(message): a known error to show in the window (a server that cannot start, a call that failed).
    """

    toolsChanged = Signal()
    callFinished = Signal(int)
    error = Signal(str)
    _listed = Signal(str, bool, object)
    _ran = Signal(int, bool, object)

    def __init__(self, core: Core, session: Any, chat_view: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._session = session
        self._view = chat_view
        self.store = ToolCallStore(core.conversations.database)
        self.hub = McpHub(parse_servers(core.settings.mcp.servers), start_timeout=core.settings.mcp.start_timeout,
                          call_timeout=core.settings.mcp.call_timeout)
        self.tools: dict[str, list[McpTool]] = {}  # listed tools by server
        self.failed: dict[str, str] = {}  # servers whose listing failed, with the reason
        self._listing: set[str] = set()
        self._new_chat: set[str] = set()  # servers switched on before a new chat's first message
        self.cards: dict[int, ToolCallCard] = {}
        self._closed = False
        self._listed.connect(self._on_listed, Qt.ConnectionType.QueuedConnection)
        self._ran.connect(self._on_ran, Qt.ConnectionType.QueuedConnection)

    # -- servers -------------------------------------------------------------------------------------------------

    def servers(self) -> list[str]:
        """The declared servers' names."""
        return sorted(self.hub.servers)

    def enabled(self, conversation: Conversation | None = None) -> list[str]:
        """The servers the open conversation (or the given one) uses."""
        conv = conversation if conversation is not None else self._session.conversation()
        names = conv.settings.get("mcp_servers", []) if conv is not None else sorted(self._new_chat)
        return [n for n in names if n in self.hub.servers]

    def set_enabled(self, name: str, on: bool) -> None:
        """Switch server ``name`` on or off for the open conversation; switching on lists its tools (starting it)."""
        conv = self._session.conversation()
        if conv is None:
            (self._new_chat.add if on else self._new_chat.discard)(name)
        else:
            names = set(conv.settings.get("mcp_servers", []))
            (names.add if on else names.discard)(name)
            self._core.conversations.update(conv.id, settings={**conv.settings, "mcp_servers": sorted(names)})
        if on:
            self.list_tools(name)
        else:
            self._stop_unused()
        self.toolsChanged.emit()

    def _stop_unused(self) -> None:
        """Servers run while the open conversation uses them: stop the others (a stdio server's process ends)."""
        used = set(self.enabled())
        for name in self.hub.running():
            if name not in used:
                self.hub.stop(name)
                self.tools.pop(name, None)

    def list_tools(self, name: str) -> None:
        """Start server ``name`` if needed and fetch its tools (``toolsChanged`` follows)."""
        if name in self._listing:
            return
        self._listing.add(name)
        self.failed.pop(name, None)
        self.hub.tools(name).add_done_callback(lambda f, n=name: self._listed.emit(n, *_outcome(f)))

    def ready(self, name: str) -> bool:
        """The server's tools are known."""
        return name in self.tools

    def apply_settings(self, settings: Settings) -> None:
        """Use changed server declarations: servers whose line changed or that were removed are stopped."""
        new = parse_servers(settings.mcp.servers)
        for name, server in list(self.hub.servers.items()):
            if new.get(name) != server:
                self.hub.stop(name)
                self.tools.pop(name, None)
        self.hub.servers = new
        self.hub.start_timeout = settings.mcp.start_timeout
        self.hub.call_timeout = settings.mcp.call_timeout
        self.toolsChanged.emit()

    def shutdown(self) -> None:
        """Stop every server (on quit); answers that arrive later are ignored."""
        self._closed = True
        self.hub.close()

    # -- turns ---------------------------------------------------------------------------------------------------

    def extras(self, conversation: Conversation, follow_up: bool = False) -> TurnExtras | None:
        """The tools of a turn of ``conversation``: those of its servers that are listed. A reply that continues
        after calls may call again (``auto``) until :data:`MAX_ROUNDS` replies in a row called tools."""
        if self._new_chat and "mcp_servers" not in conversation.settings:
            self._core.conversations.update(conversation.id, settings={
                **conversation.settings, "mcp_servers": sorted(self._new_chat)})
            conversation = self._core.conversations.get(conversation.id)
            self._new_chat = set()
        tools = [t for name in self.enabled(conversation) for t in self.tools.get(name, [])]
        if not tools:
            return None
        choice = "auto" if follow_up else str(conversation.settings.get("tool_choice") or "auto")
        if follow_up and self._rounds(conversation) >= MAX_ROUNDS:
            choice = "none"
        request, servers = tool_request(tools, choice)
        return TurnExtras(tools=request, tool_servers=servers)

    def _rounds(self, conversation: Conversation) -> int:
        calls = self.store.for_conversation(conversation.id)
        rounds = 0
        for m in reversed(self._core.conversations.messages(conversation.id)):
            if m.role != "assistant" or m.id not in calls:
                break
            rounds += 1
        return rounds

    # -- cards ---------------------------------------------------------------------------------------------------

    def show_calls(self, message: Message | None) -> None:
        """Put the cards of a finished reply's calls under it and run those the user always allows."""
        if message is None or message.role != "assistant":
            return
        for call in self.store.for_message(message.id):
            self._card(call)
            if call.state == "pending" and call.name in self._always():
                self.answer(call.id, "once")

    def show_conversation(self, _conversation_id: int = 0) -> None:
        """Cards for every call of the shown messages (after a conversation opens or a restart)."""
        self.cards = {}
        for widget in self._view.message_widgets:
            if widget.message.role == "assistant":
                for call in self.store.for_message(widget.message.id):
                    self._card(call)
        self._stop_unused()
        for name in self.enabled():
            if name not in self.tools:
                self.list_tools(name)

    def _card(self, call: StoredCall) -> ToolCallCard | None:
        widget = next((w for w in self._view.message_widgets if w.message.id == call.message_id), None)
        if widget is None:
            return None
        card = self.cards.get(call.id)
        if card is None:
            card = ToolCallCard(call)
            card.answered.connect(self.answer)
            widget.add_extra(card)
            self.cards[call.id] = card
        card.set_call(call)
        return card

    def _always(self) -> set[str]:
        conv = self._session.conversation()
        return set(conv.settings.get("mcp_always", [])) if conv is not None else set()

    # -- running -------------------------------------------------------------------------------------------------

    def answer(self, call_row_id: int, answer: str) -> None:
        """The user's answer to a pending call: ``once``/``always`` run it, ``deny`` does not."""
        call = self.store.get(call_row_id)
        if call.state != "pending":
            return
        if answer == "deny":
            call = self.store.set_state(call.id, "denied")
            self._update(call)
            self._maybe_continue(call.message_id)
            return
        if answer == "always":
            conv = self._session.conversation()
            if conv is not None:
                always = sorted(set(conv.settings.get("mcp_always", [])) | {call.name})
                self._core.conversations.update(conv.id, settings={**conv.settings, "mcp_always": always})
        server = call.server if call.server in self.hub.servers else None
        if server is None:
            self._finish(call, False, f"No enabled MCP server has the tool {call.name}.")
            return
        call = self.store.set_state(call.id, "running")
        self._update(call)
        tool = self._tool_name(server, call.name)
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = {}
        future = self.hub.call(server, tool, arguments if isinstance(arguments, dict) else {})
        future.add_done_callback(lambda f, rid=call.id: self._ran.emit(rid, *_outcome(f)))

    def _tool_name(self, server: str, name: str) -> str:
        """The server's own name for a tool the model saw as ``name`` (``server_tool`` when names clashed)."""
        names = {t.name for t in self.tools.get(server, [])}
        prefix = f"{server}_"
        if name not in names and name.startswith(prefix) and name[len(prefix):] in names:
            return name[len(prefix):]
        return name

    def _on_ran(self, call_row_id: int, ok: bool, value: Any) -> None:
        if self._closed:
            return
        call = self.store.get(call_row_id)
        if ok:
            self._finish(call, not value.is_error, value.text or "(no output)")
        else:
            self._finish(call, False, str(value))
            self.error.emit(str(value))

    def _finish(self, call: StoredCall, ok: bool, text: str) -> None:
        call = self.store.set_state(call.id, "done" if ok else "error", text)
        self._update(call)
        self.callFinished.emit(call.id)
        self._maybe_continue(call.message_id)

    def _update(self, call: StoredCall) -> None:
        card = self.cards.get(call.id) or self._card(call)
        if card is not None:
            card.set_call(call)

    def _maybe_continue(self, message_id: int) -> None:
        """Once every call of a reply has its answer, the model continues with the results."""
        calls = self.store.for_message(message_id)
        if calls and all(c.finished for c in calls):
            if not self._session.follow_up(message_id):
                log.info("the reply after the tool calls of message %s did not start", message_id)

    def _on_listed(self, name: str, ok: bool, value: Any) -> None:
        if self._closed:
            return
        self._listing.discard(name)
        if ok:
            self.tools[name] = list(value)
        else:
            self.failed[name] = str(value)
            self.tools.pop(name, None)
            self.error.emit(str(value))
        self.toolsChanged.emit()


def _outcome(future: Future) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, message)`` of a finished hub future (runs on the MCP thread)."""
    try:
        return True, future.result()
    except EmberError as exc:
        return False, str(exc)
    except Exception as exc:  # a bug: keep the traceback  # noqa: BLE001
        log.exception("MCP job failed")
        return False, f"Unexpected error in an MCP call ({type(exc).__name__}); details are in the log."


Extras = Callable[[Conversation, str, bool], "TurnExtras | None"]
