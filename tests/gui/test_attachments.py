"""Files in the chat window on the real starter model: a question about a 24-page PDF sends the part that
answers it and the reply cites it; a file too long for the context is split, cut, and the user is told; small
files go whole (pasted onto the message box); a binary file is refused and nothing is lost."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QLabel

from app.services.attachments import estimate_tokens, whole_budget
from storage.attachments import AttachmentStore
from tests.gui.gui_helpers import REPLY_TIMEOUT_MS, send
from tests.pdf_synth import write_pdf

TOPICS = ["the weather on the coast", "growing tomatoes", "old trains", "river fishing", "baking bread",
          "mountain walks", "city buses", "bird songs", "winter sports", "painting walls", "garden tools",
          "village markets"]
EMBED_TIMEOUT_MS = 180_000


def report(path: Path) -> Path:
    """A 24-page PDF; page 13 alone says what project Bluebird's launch code is."""
    pages = []
    for i in range(1, 25):
        topic = TOPICS[i % len(TOPICS)]
        lines = [f"Chapter {i}: notes about {topic}."] + [
            f"Section {i}.{k} describes {topic} in some detail, with examples from year {1990 + k}." for k in range(8)]
        pages.append(lines)
    pages[12] = ["Chapter 13: the Bluebird project.", "The launch code of project Bluebird is 7342.",
                 "Keep the launch code secret."] + pages[12][3:]
    return write_pdf(path, pages)


def attach(qtbot, win, paths: list[Path]) -> None:
    with qtbot.waitSignal(win.files.attached, timeout=EMBED_TIMEOUT_MS):
        win.extras_bar.filesChosen.emit([str(p) for p in paths])
    qtbot.waitUntil(lambda: not win.files.reading, timeout=EMBED_TIMEOUT_MS)


def sources_label(win) -> str:
    label = win.chat_view.message_widgets[-1].findChild(QLabel, "sourcesLine")
    return label.text() if label is not None else ""


def test_screenshot_question_about_a_long_pdf_cites_the_part_it_used(qtbot, window, tmp_path):
    window.resize(1120, 740)
    attach(qtbot, window, [report(tmp_path / "report.pdf")])
    store = AttachmentStore(window.core.conversations.database)
    [att] = store.pending(window.session.conversation_id)
    assert att.pages == 24 and att.mode == "chunks" and att.kind == "pdf"
    chunks = store.chunks(att.conversation_id)
    assert len(chunks) >= 24 and all(c.vector for c in chunks), "every part is embedded"
    assert list(window.extras_bar.chips) == [att.id]
    assert "split into" in window.banner.label.text()

    reply = send(qtbot, window, "What is the launch code of project Bluebird?")
    user = window.core.conversations.message(reply.parent_id)
    ctx = store.contexts([user.id])[user.id]
    best = ctx.sources[0]
    assert best["file"] == "report.pdf" and best["page"] == 13
    assert "The launch code of project Bluebird is 7342." in ctx.text
    assert store.get(att.id).message_id == user.id and window.extras_bar.chips == {}
    qtbot.waitUntil(lambda: sources_label(window) != "")
    assert sources_label(window).startswith(f"Sources: report.pdf, part {best['part']} (page 13)")
    spec = window.session.spec()
    budget = whole_budget(spec.params.n_ctx, window.session.options().max_tokens, window.core.settings.attachments)
    assert estimate_tokens(ctx.text) <= budget + 40
    assert reply.stats["prompt_tokens"] < spec.params.n_ctx and reply.stats["finish_reason"] in ("stop", "length")
    out = Path(os.environ.get("EMBER_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(out / "attachments.png"))
    assert QImage(str(out / "attachments.png")).width() >= 700


def test_file_too_large_for_the_context_is_cut_with_a_notice(qtbot, window, tmp_path):
    window.core.settings.attachments.max_chars = 10_000
    big = tmp_path / "log.txt"
    big.write_text("\n\n".join(f"Entry {i}: the pump in hall {i % 7} ran for {i} minutes." for i in range(1500)),
                   encoding="utf-8")
    notices: list[str] = []
    window.files.notice.connect(notices.append)
    attach(qtbot, window, [big])
    assert any("log.txt was cut" in n for n in notices) and any("too long to send whole" in n for n in notices)
    store = AttachmentStore(window.core.conversations.database)
    [att] = store.pending(window.session.conversation_id)
    assert att.chars == 10_000 and att.cut_chars == len(big.read_text()) - 10_000
    reply = send(qtbot, window, "How long did the pump in hall 3 run in entry 10?")
    assert reply.stats["finish_reason"] in ("stop", "length"), reply.stats
    assert reply.stats["prompt_tokens"] < window.session.spec().params.n_ctx
    user = window.core.conversations.message(reply.parent_id)
    assert store.contexts([user.id])[user.id].sources, "parts of the cut file were still sent"


def test_small_file_pasted_is_sent_whole_and_a_binary_one_refused(qtbot, window, tmp_path):
    notes = tmp_path / "todo.md"
    notes.write_text("# Todo\n\n- call the plumber on Monday\n", encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(notes))])
    QGuiApplication.clipboard().setMimeData(mime)
    with qtbot.waitSignal(window.files.attached, timeout=EMBED_TIMEOUT_MS):
        qtbot.keyClick(window.composer.input, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert window.composer.input.toPlainText() == "", "the path is not pasted as text"
    binary = tmp_path / "photo.md"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    drop = QMimeData()
    drop.setUrls([QUrl.fromLocalFile(str(binary))])
    with qtbot.waitSignal(window.files.error, timeout=EMBED_TIMEOUT_MS) as blocker:
        event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, drop, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        # Qt delivers a drop only during a real drag, which offscreen tests cannot start: the view's drop
        # handler gets the event Qt would hand it
        assert window.drops.eventFilter(window.chat_view, event) and event.isAccepted()
    assert "binary" in blocker.args[0] and "binary" in window.banner.label.text()
    store = AttachmentStore(window.core.conversations.database)
    assert [a.name for a in store.pending(window.session.conversation_id)] == ["todo.md"]
    reply = send(qtbot, window, "What is on my todo list?")
    user = window.core.conversations.message(reply.parent_id)
    ctx = store.contexts([user.id])[user.id]
    assert ctx.sources == [{"file": "todo.md"}] and "call the plumber on Monday" in ctx.text
    assert user.content == "What is on my todo list?", "the stored message is the user's words"
    qtbot.waitUntil(lambda: sources_label(window) == "Sources: todo.md")
