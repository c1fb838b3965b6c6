"""Labels from the user: the one rule for what a new chat turn says about the routed reply before it.

- Escalation (the small answer was wrong): ``/large`` with no text or with the same question as the previous user
  turn, right after a reply the small tier answered under ``auto`` or ``cascade`` (not forced); regenerating a reply
  with the large tier forced (the desktop's "Ask the large model" is that).
- Acceptance (it was right): an ordinary new message after such a reply that the router did not escalate.

Each label goes to :meth:`app.routing.Router.label` (stored once per decision, then learned from). Every front end
with a user in the loop gets here through :class:`app.services.chat.Turn`; API requests do not label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.services.surface import Core, router_of
from storage.conversations import Message
from storage.errors import StorageError
from storage.routing import RoutingRecord

log = logging.getLogger(__name__)

ROUTED_POLICIES = ("auto", "cascade")


@dataclass(frozen=True)
class Feedback:
    """A label a turn gives a stored decision."""

    decision: RoutingRecord
    wrong: bool
    source: str


def turn_feedback(core: Core, conversation_id: int, *, text: str, forced: str | None, reply_to: int | None,
                  source: str | None = None) -> Feedback | None:
    """The label the turn about to start gives the routed reply before it, or None.

    Call it before the turn changes the branch shown. ``text`` is the user's text without its ``/large`` prefix;
    ``forced`` the tier it forces; ``reply_to`` the user message answered again (regenerate); ``source`` names an
    escalation's origin (default ``large-prefix``, or ``regenerate-large`` with ``reply_to``).
    """
    shown = core.conversations.messages(conversation_id)
    if reply_to is not None:  # another version of the reply to ``reply_to``: only a forced large tier says anything
        if forced != "large":
            return None
        after = next((shown[i + 1] for i, m in enumerate(shown[:-1]) if m.id == reply_to), None)
        return _escalation(core, after, source or "regenerate-large")
    if not shown or shown[-1].role != "assistant":
        return None
    reply = shown[-1]
    if forced == "large":
        previous = next((m for m in reversed(shown) if m.role == "user"), None)
        if text.strip() and (previous is None or not _same(text, previous.content)):
            return None
        return _escalation(core, reply, source or "large-prefix")
    if forced is not None or not text.strip():
        return None
    decision = _routed_small(core, reply)
    if decision is None or decision.escalated or decision.error:
        return None
    return Feedback(decision, False, "next-message")


def give_feedback(core: Core, feedback: Feedback | None) -> bool:
    """Record ``feedback`` and let the router learn from it; True when the label was new or changed. A label that
    cannot be stored is logged and dropped: it never stops the turn."""
    if feedback is None:
        return False
    try:
        return router_of(core).label(feedback.decision, wrong=feedback.wrong, source=feedback.source)
    except StorageError as exc:
        log.warning("routing label not stored: %s", exc)
        return False


def _escalation(core: Core, reply: Message | None, source: str) -> Feedback | None:
    decision = _routed_small(core, reply) if reply is not None and reply.role == "assistant" else None
    return Feedback(decision, True, source) if decision is not None else None


def _routed_small(core: Core, reply: Message) -> RoutingRecord | None:
    """The decision of ``reply`` when the router had the small tier answer it under auto or cascade."""
    decision = router_of(core).store.latest_decision(message_id=reply.id)
    if decision is None or decision.forced or decision.policy not in ROUTED_POLICIES or decision.tier != "small":
        return None
    return decision


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
