"""Files in the chat window: attaching them (button, drop, paste) off the GUI thread, the chips that show them
until the message is sent, the file text each question sends, and the ``Sources:`` line under the reply."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from app.services.attachments import Prepared, attach, build_context, sources_line, whole_budget
from app.services.chat import new_conversation
from app.services.chat_extras import TurnExtras
from app.services.surface import Core
from storage.attachments import Attachment, AttachmentStore
from storage.conversations import Conversation, Message
from storage.errors import EmberError

log = logging.getLogger(__name__)

EMBED_TIMEOUT_S = 600.0


class ChatFiles(QObject):
    """Attachments of the open conversation (one per window).

    Signals:
        pendingChanged(list): the files waiting for the next message (:class:`Attachment` rows).
        busyChanged(str): what is being read now ("" when nothing).
        notice(message): something the user should know about a file (split into parts, cut).
        error(message): a file could not be attached.
        attached(Prepared): a file was stored.
    """

    pendingChanged = Signal(list)
    busyChanged = Signal(str)
    notice = Signal(str)
    error = Signal(str)
    attached = Signal(object)

    def __init__(self, core: Core, session: Any, chat_view: Any, background: Any,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._session = session
        self._view = chat_view
        self._background = background
        self.store = AttachmentStore(core.conversations.database)
        self._reading: list[str] = []
        self._queued: list[str] = []  # messages sent while files were being read
        self._vectors: dict[tuple[int, str], list[float]] = {}  # question embeddings by (conversation, text)

    # -- attaching -----------------------------------------------------------------------------------------------

    def attach_files(self, paths: Sequence[str]) -> None:
        """Read and store each file off the GUI thread (split and embedded when it is long)."""
        conv = self._session.conversation()
        if conv is None:  # a new chat: the conversation exists from its first file on
            conv = new_conversation(self._core, model=self._session.model_name)
            self._session.open(conv.id)
        try:
            spec = self._session.spec()
        except EmberError as exc:
            self.error.emit(str(exc))
            return
        settings = self._core.settings.attachments
        budget = whole_budget(spec.params.n_ctx, self._session.options().max_tokens, settings)
        engine = self._core.engine

        def embed(texts: list[str]) -> list[list[float]]:
            return engine.embed(texts, model=spec).wait(EMBED_TIMEOUT_S).vectors

        for raw in paths:
            path = Path(raw)
            self._reading.append(path.name)
            self.busyChanged.emit(self._reading[0])
            self._background.run(
                lambda p=path, cid=conv.id: attach(self.store, cid, p, settings=settings, budget_tokens=budget,
                                                   embed=embed),
                lambda prepared, n=path.name: self._done(n, prepared),
                lambda message, n=path.name: self._failed(n, message))

    def _done(self, name: str, prepared: Prepared) -> None:
        self._read(name)
        for text in prepared.notices:
            self.notice.emit(text)
        self.attached.emit(prepared)
        self.pendingChanged.emit(self.pending())

    def _failed(self, name: str, message: str) -> None:
        self._read(name)
        self.error.emit(message)

    def _read(self, name: str) -> None:
        if name in self._reading:
            self._reading.remove(name)
        self.busyChanged.emit(self._reading[0] if self._reading else "")
        if not self._reading and self._queued:
            self.send(self._queued.pop(0))

    @property
    def reading(self) -> bool:
        """Files are still being read or embedded."""
        return bool(self._reading)

    def pending(self) -> list[Attachment]:
        """The open conversation's files waiting for the next message."""
        conv = self._session.conversation()
        return self.store.pending(conv.id) if conv is not None else []

    def remove(self, attachment_id: int) -> None:
        """Take back a file that was not sent yet."""
        self.store.remove(attachment_id)
        self.pendingChanged.emit(self.pending())

    def conversation_opened(self, _conversation_id: int = 0) -> None:
        """Show the chips of the opened conversation and the sources under its replies."""
        self.pendingChanged.emit(self.pending())
        self.show_sources()

    # -- asking --------------------------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Send ``text``: when the conversation has split files the question is embedded first (off the GUI
        thread), so its parts can be found by meaning as well as by keywords. While files are still being read
        the message waits for them."""
        if self._reading:
            self._queued.append(text)
            self.notice.emit(f"Your message is sent once {self._reading[0]} is read.")
            return
        conv = self._session.conversation()
        if conv is None or not self.store.chunks(conv.id) or (conv.id, text.strip()) in self._vectors:
            self._session.send(text)
            return
        try:
            spec = self._session.spec()
        except EmberError:
            self._session.send(text)  # the session says what is wrong with the model
            return
        engine, key = self._core.engine, (conv.id, text.strip())

        def embed() -> list[float]:
            return engine.embed([text.strip()], model=spec).wait(EMBED_TIMEOUT_S).vectors[0]

        def done(vector: list[float]) -> None:
            self._vectors[key] = vector
            self._session.send(text)

        def failed(message: str) -> None:
            log.info("the question could not be embedded (%s); keyword search only", message)
            self._session.send(text)

        self._background.run(embed, done, failed)

    def extras(self, conversation: Conversation, text: str) -> TurnExtras | None:
        """The hook that gives a new user message its file text (None: the conversation has no files)."""
        if not self.store.for_conversation(conversation.id):
            return None
        question = text.strip()

        def stored(message: Message) -> None:
            pending = self.store.pending(conversation.id)
            spec = self._session.spec()
            budget = whole_budget(spec.params.n_ctx, self._session.options().max_tokens,
                                  self._core.settings.attachments)
            context = build_context(self.store, conversation.id, question, new=pending, budget_tokens=budget,
                                    question_vector=self._vectors.get((conversation.id, question)))
            self.store.link([a.id for a in pending], message.id)
            if context is not None:
                self.store.set_context(message.id, context.text, context.sources)
            self.pendingChanged.emit([])

        return TurnExtras(on_user_stored=stored)

    def sources_of(self, user_message_id: int) -> list[dict[str, Any]]:
        """The files and parts a user message sent."""
        ctx = self.store.contexts([user_message_id]).get(user_message_id)
        return ctx.sources if ctx is not None else []

    def show_sources(self, *_: Any) -> None:
        """A ``Sources:`` line under each shown reply whose question sent file text, and the files a message
        was sent with under it."""
        widgets = self._view.message_widgets
        sent: dict[int, list[str]] = {}
        conv = self._session.conversation()
        for att in self.store.for_conversation(conv.id) if conv is not None else []:
            if att.message_id is not None:
                pages = f", {att.pages} pages" if att.kind == "pdf" else ""
                sent.setdefault(att.message_id, []).append(f"{att.name}{pages}")
        for widget in widgets:
            files = sent.get(widget.message.id)
            if files and widget.findChild(QLabel, "attachedLine") is None:
                label = QLabel("Attached: " + "; ".join(files))
                label.setObjectName("attachedLine")
                label.setStyleSheet("color: palette(placeholder-text);")
                widget.add_extra(label)
        users = [w.message.id for w in widgets if w.message.role == "user"]
        contexts = self.store.contexts(users)
        previous = None
        for widget in widgets:
            if widget.message.role == "user":
                previous = widget.message.id
                continue
            ctx = contexts.get(previous) if previous is not None else None
            previous = None
            if ctx is None or not ctx.sources or widget.findChild(QLabel, "sourcesLine") is not None:
                continue
            label = QLabel(sources_line(ctx.sources))
            label.setObjectName("sourcesLine")
            label.setWordWrap(True)
            label.setStyleSheet("color: palette(placeholder-text);")
            label.setAccessibleName("Sources of this reply")
            widget.add_extra(label)
