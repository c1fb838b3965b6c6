"""One chat turn, the same for every front end: store the user's message, stream the reply into the database."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from app.services.conversation_settings import ConversationSettings
from app.services.surface import Core, router_of
from app.services.chat_extras import TurnExtras, model_messages
from inference.engine import ChatResult, JobHandle, ModelSpec
from inference.events import EngineEvent, Failed, LoadProgress, Retracted, TokenText
from inference.sampling import SamplingOptions
from storage.conversations import Conversation, Message, StreamingMessage
from storage.errors import EmberError, user_message

# At import, not in the first turn: app.routing brings httpx (and rich), whose import held the GUI thread ~300 ms.
from app.routing import RouterError, split_force_prefix
from app.services.route_feedback import give_feedback, turn_feedback

if TYPE_CHECKING:
    from app.routing import RouteRequest

log = logging.getLogger(__name__)

TITLE_LENGTH = 60


def new_conversation(core: Core, *, model: str, system_prompt: str | None = None,
                     sampling: SamplingOptions | None = None) -> Conversation:
    """Create a conversation that remembers its model, system prompt and sampling settings."""
    settings = ConversationSettings(
        system_prompt=core.settings.chat.system_prompt if system_prompt is None else system_prompt,
        sampling=sampling or core.settings.sampling)
    return core.conversations.create(title="New chat", model=model, settings=settings.stored())


def history(core: Core, conversation: Conversation) -> list[dict[str, str]]:
    """The messages to send to the model: the conversation's system prompt, then its turns."""
    msgs: list[dict[str, str]] = []
    system = ConversationSettings.of(conversation.settings, conversation_id=conversation.id).system_prompt
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.extend(model_messages(core, core.conversations.messages(conversation.id)))  # files, tool calls
    return msgs


def remember_route(core: Core, conversation: Conversation, route: "RouteRequest") -> Conversation:
    """Store ``route``'s policy and large tier as the conversation's own (``router``, ``router_large`` in its
    settings), so its later turns, in any window or the CLI, route the same way; returns the updated row."""
    own = ConversationSettings.of(conversation.settings, conversation_id=conversation.id)
    own.router = route.policy  # type: ignore[assignment] - RouteRequest's policy is checked by the router
    if route.large:
        own.router_large = route.large
    elif route.large == "":  # back to the settings' large tier; None keeps the conversation's
        own.router_large = None
    settings = own.stored()
    if settings == conversation.settings:
        return conversation
    core.conversations.update(conversation.id, settings=settings)
    return core.conversations.get(conversation.id)


class Turn:
    """A reply being generated for a conversation, written to the database while it streams.

    Create it, then either iterate :meth:`events` (the CLI) or pass ``on_event`` (Qt adapters). :meth:`cancel`
    stops it at the next token; what was generated so far is kept.

    Routing: ``route`` (else the conversation's ``router`` setting, else the router settings) picks the policy;
    a ``route`` naming a policy is remembered by the conversation (:func:`remember_route`). A ``/large`` or
    ``/small`` prefix on the text forces a tier and is not stored. ``spec`` is the small tier. ``stream_cascade``
    streams a ``cascade``'s small answer (for consumers that handle :class:`Retracted`, which withdraws it when
    the router escalates; the stored reply is then the large tier's alone). ``before_store`` runs once the turn is
    known to be able to start (model and tiers resolved), before anything is written.

    Versions: the user message is added at the end of the branch the conversation shows (an edit first shows the
    branch that ends before the edited message, so the edit becomes a new version beside it). ``reply_to`` names a
    stored user message to answer again instead (Regenerate): the new reply is another version beside the earlier
    ones, and ``user_text`` is not stored again. ``/large`` alone answers the previous user message again with the
    large tier (a new version of its reply). ``force`` forces a tier without a prefix.

    Labels: a turn that escalates a small-tier reply, or goes on from it, labels that reply's routing decision
    (:mod:`app.services.route_feedback`); ``label_source`` names an escalation's origin (``ask-large``).
    """

    def __init__(self, core: Core, conversation_id: int, user_text: str, *, spec: ModelSpec,
                 options: SamplingOptions, on_event: Callable[[EngineEvent], None] | None = None,
                 route: "RouteRequest | None" = None, stream_cascade: bool = False,
                 before_store: Callable[[], None] | None = None, reply_to: int | None = None,
                 extras: TurnExtras | None = None, force: str | None = None,
                 label_source: str | None = None) -> None:
        self._core = core
        conversation = core.conversations.get(conversation_id)
        user_text, forced = split_force_prefix(user_text)
        forced = force or forced
        if forced == "large" and not user_text and reply_to is None:  # "/large": the previous question again
            previous = next((m for m in reversed(core.conversations.messages(conversation_id)) if m.role == "user"),
                            None)
            if previous is None:
                raise RouterError("There is no earlier question to ask the large model: write one after /large.")
            reply_to, user_text = previous.id, previous.content
            label_source = label_source or "large-prefix"
        policy = router_of(core).policy_for(conversation.settings, route)
        own = ConversationSettings.of(conversation.settings, conversation_id=conversation_id)
        large = (route.large if route else None) or own.router_large or None
        if forced == "large" or (policy != "off" and forced != "small"):
            router_of(core).large_tier(large)  # no large tier: fail before storing
        feedback = turn_feedback(core, conversation_id, text=user_text, forced=forced, reply_to=reply_to,
                                 source=label_source) if reply_to is not None else None  # before the branch moves
        if before_store is not None:  # the turn can start: e.g. delete what an edited message replaces
            before_store()
        if reply_to is None:  # a new message: about the reply it follows on the branch now shown
            feedback = turn_feedback(core, conversation_id, text=user_text, forced=forced, reply_to=None,
                                     source=label_source)
        give_feedback(core, feedback)
        if route is not None and route.policy:
            conversation = remember_route(core, conversation, route)
        if reply_to is None:
            self.user_message = core.conversations.add_message(conversation_id, "user", user_text)
            if extras is not None and extras.on_user_stored is not None:
                extras.on_user_stored(self.user_message)  # e.g. the attached files' text for this message
        else:
            self.user_message = core.conversations.message(reply_to)
            core.conversations.show_branch(conversation_id, reply_to)
        if conversation.title == "New chat":
            core.conversations.update(conversation_id, title=_title(user_text))
        self.reply = StreamingMessage(core.conversations, conversation_id, model=spec.name,
                                      flush_interval=core.settings.chat.stream_flush_interval)
        self._on_event = on_event
        self._extras = extras
        self.message: Message | None = None
        self.storage_error: EmberError | None = None
        msgs = history(core, core.conversations.get(conversation_id))  # skips the empty reply just created
        tools = extras.tools if extras is not None else None
        if (policy == "off" and forced is None) or tools is not None:  # the router's tiers take no tools
            self.handle: JobHandle = core.engine.chat(msgs, options, model=spec, on_event=self._record,
                                                      tools=tools, interactive=True)
        else:
            self.handle = router_of(core).start(msgs, options, small=spec, policy=policy, forced=forced,
                                                large=large, conversation_id=conversation_id,
                                                message_id=self.reply.message.id, on_event=self._record,
                                                stream_cascade=stream_cascade)

    def _record(self, event: EngineEvent) -> None:
        """Runs on the engine thread: persist text as it arrives and the stats at the end.

        If the database cannot be written (disk full), generation stops and :meth:`wait` raises that error.
        """
        try:
            if isinstance(event, TokenText):
                self.reply.append(event.text)
            elif isinstance(event, Retracted):
                self.reply.reset()
            elif isinstance(event, Failed):
                self.message = self.reply.finish({"finish_reason": "error",  # the engine logged a bug
                                                  "error": user_message(event.error, already_logged=True)})
            elif not isinstance(event, LoadProgress):
                result: ChatResult = event.result
                if result.tools is not None and result.tools.calls and self._extras is not None:
                    self.reply.reset()  # the reply keeps its text; its calls are stored beside it
                    self.reply.append(result.tools.content.strip())
                    self._extras.calls_made(self._core, self.reply.message, result.tools.calls)
                self.message = self.reply.finish(result.stats.as_dict())
        except EmberError as exc:
            self.storage_error = exc
            self.handle.cancel()
        finally:
            if self._on_event is not None:
                self._on_event(event)

    def events(self):
        """The engine events of this turn (see :class:`inference.engine.JobHandle`)."""
        return iter(self.handle)

    def cancel(self) -> None:
        """Stop generating; the partial reply stays stored."""
        self.handle.cancel()

    def wait(self, timeout: float | None = None) -> ChatResult:
        """Block until the reply is complete.

        Raises:
            EmberError: the generation failed (the partial reply is kept).
        """
        result = self.handle.wait(timeout)
        if self.storage_error is not None:
            raise self.storage_error
        return result


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


CONTEXT_NOTICE = ("The conversation is now longer than the model's context: its earliest turns are out of context "
                  "and the model no longer sees them.")


def context_notice(core: Core, conversation_id: int) -> str | None:
    """The notice to show once, when a conversation's latest reply is the first one written without its earliest
    turns in context; None otherwise."""
    replies = [m for m in core.conversations.messages(conversation_id) if m.role == "assistant"]
    trimmed = [bool(m.stats.get("trimmed_messages")) for m in replies]
    if trimmed and trimmed[-1] and not any(trimmed[:-1]):
        return CONTEXT_NOTICE
    return None
