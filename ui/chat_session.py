"""The chat window's controller: one open conversation, its running reply, stop/regenerate/edit-and-resend, and
switching between the versions an edit or a regenerate leaves (nothing is deleted).

Replies run through :class:`app.services.chat.Turn` (the same path as the terminal chat); its engine-thread callbacks reach
this object as queued signals, so every slot here runs on the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from app.services.chat import Turn, new_conversation, remember_route
from app.services.conversation_settings import ConversationSettings, turn_sampling
from app.services.surface import Core
from inference.engine import ModelSpec
from inference.events import Failed, Finished, LoadProgress, Retracted, TokenText
from inference.sampling import SamplingOptions
from storage.conversations import Conversation, Message, Version
from storage.errors import EmberError, user_message
from ui.engine_adapter import EventRelay

if TYPE_CHECKING:
    from typing import Callable

    from app.services.chat_extras import TurnExtras
    from app.routing import RouteRequest

log = logging.getLogger(__name__)


class ChatSession(QObject):
    """Sends messages of the open conversation to the engine and reports the reply as it streams.

    Signals:
        conversationOpened(id): the open conversation changed (or was reset); views reload it.
        conversationsChanged(): titles or order changed; the list reloads.
        replyStarted(user, reply): a turn began; ``user`` and the empty ``reply`` are stored :class:`Message` rows.
        replyText(text): more reply text (one engine event's worth; the view coalesces repaints).
        replyRetracted(reason): the reply text shown so far is withdrawn; what follows replaces it (a ``cascade``
            that escalated after streaming the small model's answer).
        replyFinished(message): the stored reply with its stats (``finish_reason`` stop/length/repetition/
            cancelled/error).
        loadProgress(fraction): the turn is loading its model first.
        busyChanged(busy): a reply started or ended.
        error(message): a known error to show in the window.
    """

    conversationOpened = Signal(int)
    conversationsChanged = Signal()
    replyStarted = Signal(object, object)
    replyText = Signal(str)
    replyRetracted = Signal(str)
    replyFinished = Signal(object)
    loadProgress = Signal(float)
    busyChanged = Signal(bool)
    error = Signal(str)

    def __init__(self, core: Core, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._relay = EventRelay(self._on_event, self)
        self._tags = itertools.count(1)
        self._tag = 0
        self._turn: Turn | None = None
        self._conversation_id: int | None = None
        self.model_name: str = core.settings.chat.model
        self.draft: str | None = None  # "off", "lookup" or a draft model; None: the speculative settings decide
        self.route: "RouteRequest | None" = None  # the open conversation's routing; None: the router settings
        # What a turn sends beyond the messages (MCP tools, attached files): (conversation, text, follow_up) ->
        # TurnExtras or None; set by the window's tools and files controllers.
        self.extras: "Callable[[Conversation, str, bool], TurnExtras | None] | None" = None

    # -- state ---------------------------------------------------------------------------------------------------

    @property
    def conversation_id(self) -> int | None:
        """The open conversation, or None before the first message of a new chat."""
        return self._conversation_id

    @property
    def busy(self) -> bool:
        """True while a reply is being generated."""
        return self._turn is not None

    def conversation(self) -> Conversation | None:
        """The open conversation's row."""
        if self._conversation_id is None:
            return None
        return self._core.conversations.get(self._conversation_id)

    def messages(self) -> list[Message]:
        """The open conversation's messages on the branch shown, oldest first."""
        if self._conversation_id is None:
            return []
        return self._core.conversations.messages(self._conversation_id)

    def versions(self) -> dict[int, Version]:
        """For each shown message, its place among its versions (``‹ 2/3 ›``)."""
        if self._conversation_id is None:
            return {}
        return self._core.conversations.versions(self._conversation_id)

    def options(self) -> SamplingOptions:
        """Sampling options of the open conversation (the defaults for a new chat)."""
        conv = self.conversation()
        if conv is None:
            return self._core.settings.sampling
        return turn_sampling(self._core.settings.sampling, conv.settings, conversation_id=conv.id)

    # -- actions -------------------------------------------------------------------------------------------------

    def open(self, conversation_id: int | None) -> None:
        """Show another conversation (None: an empty new chat). A running reply is stopped first.

        The conversation's own routing (saved by its turns) becomes the current one; a new chat keeps the current
        routing."""
        self.stop()
        self._conversation_id = conversation_id
        if conversation_id is not None:
            self.route = self._stored_route()
        self.conversationOpened.emit(conversation_id or 0)

    def _stored_route(self) -> "RouteRequest | None":
        from app.routing import RouteRequest

        conv = self.conversation()
        own = ConversationSettings.of(conv.settings, conversation_id=conv.id) if conv else None
        if own is None or not own.router:
            return None
        return RouteRequest(policy=own.router, large=own.router_large or None)

    def new(self) -> None:
        """Start a new chat; the conversation row is created with its first message."""
        self.open(None)

    def set_model(self, name: str) -> None:
        """Use this library model (name, alias or path) for the next replies (its drafter from the settings)."""
        if name != self.model_name:
            self.draft = None
        self.model_name = name

    def set_draft(self, choice: str | None) -> None:
        """Speculative decoding for the next replies: ``off``, ``lookup``, a draft model, or None (settings)."""
        self.draft = choice or None

    def set_route(self, policy: str, large: str = "") -> None:
        """Route the next replies with ``policy`` (off/auto/cascade) and ``large`` ("" for the settings' tier);
        the open conversation remembers it."""
        from app.routing import RouteRequest

        self.route = RouteRequest(policy=policy, large=large)  # "" forgets the conversation's large tier
        conv = self.conversation()
        if conv is not None:  # the open conversation keeps the choice even before its next message
            remember_route(self._core, conv, self.route)

    def spec(self) -> ModelSpec:
        """The small tier's load spec: the chosen model with the chosen drafter.

        Raises:
            ModelNotFoundError, ModelFileError, SettingsError: the model or draft cannot be used.
        """
        if self.draft == "lookup":
            return self._core.model_spec(self.model_name, lookup=True)
        return self._core.model_spec(self.model_name, draft=self.draft)

    def update_settings(self, *, system_prompt: str, sampling: SamplingOptions) -> None:
        """Save the open conversation's system prompt and sampling (creating the conversation if needed)."""
        conv = self._ensure_conversation()
        own = ConversationSettings.of(conv.settings, conversation_id=conv.id)
        own.system_prompt, own.sampling = system_prompt, sampling
        self._core.conversations.update(conv.id, settings=own.stored())

    def send(self, text: str, *, edit_of: int | None = None, reply_to: int | None = None, force: str | None = None,
             label_source: str | None = None) -> bool:
        """Send a user message and start the reply; False (with ``error`` emitted) when it cannot start.

        ``edit_of``: the message is a new version of that user message (the branch after it stays stored).
        ``reply_to``: write another version of the reply to that stored user message (``text`` is its text).
        ``force``: the tier that answers (``large``/``small``) whatever the routing; ``label_source``: see
        :class:`app.services.chat.Turn`.
        The branch shown changes only once the turn can start; if it then fails, the earlier branch is shown again.
        """
        text = text.strip()
        if not text or self.busy:
            return False
        if text == "/large" and edit_of is None and reply_to is None:  # the last question again, large tier
            users = [m for m in self.messages() if m.role == "user"]
            if users:  # a new version of its reply, shown as a regenerate is (none: the turn says what to do)
                return self.send(users[-1].content, reply_to=users[-1].id, force="large",
                                 label_source="large-prefix")
        moved: list[int | None] = []
        try:
            spec = self.spec()
            conv = self._ensure_conversation()
            options = self.options()
            branch_end = (self._core.conversations.message(edit_of).parent_id if edit_of is not None
                          else reply_to)
            extras = self.extras(conv, text, False) if self.extras is not None else None
            self._tag = next(self._tags)
            self._turn = Turn(self._core, conv.id, text, spec=spec, options=options,
                              on_event=self._relay.callback(self._tag), route=self.route, stream_cascade=True,
                              before_store=(None if edit_of is None and reply_to is None
                                            else lambda: moved.append(self._show_branch(branch_end))),
                              reply_to=reply_to, extras=extras, force=force, label_source=label_source)
        except EmberError as exc:
            if moved:
                self._show_branch(moved[0])
            self.error.emit(user_message(exc))
            return False
        if conv.model != spec.name:
            self._core.conversations.update(conv.id, model=spec.name)
        self.busyChanged.emit(True)
        self.replyStarted.emit(self._turn.user_message, self._turn.reply.message)
        self.conversationsChanged.emit()
        return True

    def follow_up(self, message_id: int) -> bool:
        """Let the model continue after the tool calls of reply ``message_id`` ran (or were denied): a new reply
        follows it, written with the calls' results. False (with ``error`` emitted) when it cannot start."""
        conv = self.conversation()
        if self.busy or conv is None:
            return False
        try:
            spec = self.spec()
            extras = self.extras(conv, "", True) if self.extras is not None else None
            self._tag = next(self._tags)
            self._turn = Turn(self._core, conv.id, "", spec=spec, options=self.options(),
                              on_event=self._relay.callback(self._tag), reply_to=message_id, extras=extras)
        except EmberError as exc:
            self.error.emit(user_message(exc))
            return False
        self.busyChanged.emit(True)
        self.replyStarted.emit(self._turn.user_message, self._turn.reply.message)  # the calling reply is shown
        return True

    def stop(self) -> None:
        """Stop the reply being generated (what was written so far is kept)."""
        if self._turn is not None:
            self._turn.cancel()

    def regenerate(self) -> bool:
        """Write the last reply again, as a new version beside the earlier ones."""
        if self.busy:
            return False
        users = [m for m in self.messages() if m.role == "user"]
        if not users:
            return False
        return self.send(users[-1].content, reply_to=users[-1].id)

    def ask_large(self, message_id: int) -> bool:
        """Write reply ``message_id`` again with the large tier forced, as a new version beside it (the router
        records that the small tier's answer was not good enough). False while busy or for an unknown reply."""
        if self.busy:
            return False
        reply = next((m for m in self.messages() if m.id == message_id and m.role == "assistant"), None)
        if reply is None or reply.parent_id is None:
            return False
        question = self._core.conversations.message(reply.parent_id)
        return self.send(question.content, reply_to=question.id, force="large", label_source="ask-large")

    def edit_and_resend(self, message_id: int, text: str) -> bool:
        """Send ``text`` as a new version of a user message; the earlier version and its replies stay stored."""
        if self.busy or not text.strip():
            return False
        return self.send(text, edit_of=message_id)

    def switch_version(self, message_id: int, step: int) -> bool:
        """Show the version ``step`` places after (negative: before) this message's, with the latest branch that
        follows it; the conversation continues from there. False while a reply is written or past either end."""
        if self.busy or self._conversation_id is None:
            return False
        version = self.versions().get(message_id)
        if version is None or not 1 <= version.index + step <= version.count:
            return False
        self._core.conversations.show_version(version.ids[version.index + step - 1])
        self.conversationOpened.emit(self._conversation_id)
        return True

    def _show_branch(self, leaf_id: int | None) -> int | None:
        """Show the branch ending at ``leaf_id``; returns the end shown before."""
        conv = self._core.conversations.get(self._conversation_id)
        self._core.conversations.show_branch(conv.id, leaf_id)
        self.conversationOpened.emit(conv.id)
        return conv.leaf_id

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the running reply and wait for it (on quit)."""
        turn = self._turn
        if turn is not None:
            turn.cancel()
            try:
                turn.handle.wait(timeout)
            except (EmberError, TimeoutError):
                pass
        self._turn = None

    # -- engine events -------------------------------------------------------------------------------------------

    def _ensure_conversation(self) -> Conversation:
        if self._conversation_id is None:
            conv = new_conversation(self._core, model=self.model_name)
            self._conversation_id = conv.id
            self.conversationsChanged.emit()
            return conv
        return self._core.conversations.get(self._conversation_id)

    def _on_event(self, tag: int, event: Any) -> None:
        if tag != self._tag or self._turn is None:
            return
        if isinstance(event, TokenText):
            self.replyText.emit(event.text)
        elif isinstance(event, Retracted):
            self.replyRetracted.emit(event.reason)
        elif isinstance(event, LoadProgress):
            self.loadProgress.emit(event.fraction)
        elif isinstance(event, (Finished, Failed)):
            turn, self._turn = self._turn, None
            message = turn.message or self._core.conversations.message(turn.reply.message.id)
            self.busyChanged.emit(False)
            if isinstance(event, Failed):
                self.error.emit(user_message(event.error, already_logged=True))  # a bug: by the engine
            elif turn.storage_error is not None:
                self.error.emit(user_message(turn.storage_error))
            self.replyFinished.emit(message)
            self.conversationsChanged.emit()
