"""The chat window on the real starter model: streaming, stop, regenerate, edit-and-resend, errors."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from inference.events import GenerationStats
from tests.gui.gui_helpers import REPLY_TIMEOUT_MS, send


def test_send_message_streams_reply_into_view(qtbot, window):
    chunks: list[str] = []
    window.session.replyText.connect(chunks.append)
    reply = send(qtbot, window, "Name three colours.")
    assert reply.role == "assistant" and reply.content
    assert len(chunks) > 1, "the reply should arrive token by token"
    assert "".join(chunks) == reply.content
    widgets = window.chat_view.message_widgets
    assert [w.message.role for w in widgets] == ["user", "assistant"]
    assert widgets[-1].body.text == reply.content
    footer = widgets[-1].footer.text()
    assert "tok/s" in footer and "first token" in footer
    assert window.composer.send_button.text() == "Send"
    # the conversation appeared in the list, titled after the first message
    assert window.conversations.ids() == [window.session.conversation_id]
    assert window.conversations.list.item(0).text() == "Name three colours."


def _long_replies(window, max_tokens: int = 1500) -> None:
    from inference.sampling import SamplingOptions

    window.core.settings.sampling = SamplingOptions(temperature=0.8, seed=7, max_tokens=max_tokens)


def test_escape_stops_a_streaming_reply_within_200_ms(qtbot, window):
    _long_replies(window)
    window.composer.input.setPlainText("Write a very long story about a dragon who learns to cook.")
    with qtbot.waitSignal(window.session.replyText, timeout=REPLY_TIMEOUT_MS):
        qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    assert window.composer.send_button.text() == "Stop"
    with qtbot.waitSignal(window.session.replyFinished, timeout=2000) as blocker:
        started = time.perf_counter()
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    elapsed = time.perf_counter() - started
    reply = blocker.args[0]
    assert elapsed < 0.2, f"stopping took {elapsed * 1000:.0f} ms"
    assert reply.stats["finish_reason"] == "cancelled"
    assert reply.content, "the text written before Stop is kept"
    assert window.chat_view.message_widgets[-1].body.text == reply.content
    assert "stopped" in window.chat_view.message_widgets[-1].footer.text()
    assert window.composer.send_button.text() == "Send"


def test_streaming_repaints_are_coalesced(qtbot, window):
    _long_replies(window, max_tokens=200)
    tokens: list[str] = []
    window.session.replyText.connect(tokens.append)
    started = time.perf_counter()
    reply = send(qtbot, window, "Tell me about the sea.")
    elapsed = time.perf_counter() - started
    repaints = window.chat_view.repaints
    assert repaints <= elapsed * 30 + 3, f"{repaints} repaints in {elapsed:.2f} s"
    assert len(tokens) > repaints or len(tokens) < 10
    assert window.chat_view.message_widgets[-1].body.text == reply.content


def test_regenerate_keeps_the_earlier_reply_as_a_version(qtbot, window):
    first = send(qtbot, window, "Say hello.")
    last = window.chat_view.message_widgets[-1]
    assert last.regenerate_button.isVisibleTo(window)
    assert not last.versions.isVisibleTo(window), "one version: no switcher"
    with qtbot.waitSignal(window.session.replyFinished, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(last.regenerate_button, Qt.MouseButton.LeftButton)
    second = blocker.args[0]
    assert second.id != first.id and second.created > first.created
    stored = window.session.messages()
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].content == "Say hello." and stored[1].id == second.id
    assert second.parent_id == first.parent_id == stored[0].id, "both replies answer the same message"
    kept = window.core.conversations.message(first.id)
    assert kept.content == first.content and kept.stats == first.stats, "the first reply is kept as it was"
    assert [w.message.role for w in window.chat_view.message_widgets] == ["user", "assistant"]
    shown = window.chat_view.message_widgets[-1]
    assert shown.message.id == second.id
    assert shown.versions.isVisibleTo(window) and shown.versions.label.text() == "2/2"
    assert shown.versions.previous_button.isEnabled() and not shown.versions.next_button.isEnabled()

    qtbot.mouseClick(shown.versions.previous_button, Qt.MouseButton.LeftButton)
    shown = window.chat_view.message_widgets[-1]
    assert shown.message.id == first.id and shown.body.text == first.content
    assert shown.versions.label.text() == "1/2" and shown.versions.next_button.isEnabled()
    assert "tok/s" in shown.footer.text(), "the version shown keeps its stats"

    # the conversation continues from the version shown: the model is sent that branch
    follow = send(qtbot, window, "Thanks.")
    stored = window.session.messages()
    assert [m.id for m in stored][:2] == [first.parent_id, first.id]
    assert stored[2].parent_id == first.id and stored[3].id == follow.id
    assert len(window.core.conversations.all_messages(window.session.conversation_id)) == 5


def test_edit_and_resend_keeps_the_earlier_version_and_its_replies(qtbot, window):
    send(qtbot, window, "What is 2 + 2?")
    send(qtbot, window, "And 3 + 3?")
    original = [(m.id, m.content) for m in window.session.messages()]
    first_user = window.chat_view.message_widgets[0]
    qtbot.mouseClick(first_user.edit_button, Qt.MouseButton.LeftButton)
    first_user.editor_text.setPlainText("What is the capital of France?")
    send_button = next(b for b in first_user._editor.findChildren(QPushButton) if b.text() == "Save and send")
    with qtbot.waitSignal(window.session.replyFinished, timeout=REPLY_TIMEOUT_MS):
        qtbot.mouseClick(send_button, Qt.MouseButton.LeftButton)
    stored = window.session.messages()
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].content == "What is the capital of France?"
    assert [w.message.id for w in window.chat_view.message_widgets] == [m.id for m in stored]
    edited = window.chat_view.message_widgets[0]
    assert edited.versions.isVisibleTo(window) and edited.versions.label.text() == "2/2"
    assert not window.chat_view.message_widgets[1].versions.isVisibleTo(window)

    qtbot.mouseClick(edited.versions.previous_button, Qt.MouseButton.LeftButton)
    assert [(m.id, m.content) for m in window.session.messages()] == original, "the earlier branch is whole"
    assert [w.message.id for w in window.chat_view.message_widgets] == [i for i, _ in original]
    assert window.chat_view.message_widgets[0].versions.label.text() == "1/2"
    qtbot.mouseClick(window.chat_view.message_widgets[0].versions.next_button, Qt.MouseButton.LeftButton)
    assert [m.id for m in window.session.messages()] == [m.id for m in stored]


def test_an_edit_that_cannot_be_sent_loses_nothing(qtbot, window):
    send(qtbot, window, "What is 2 + 2?")
    before = [(m.role, m.content) for m in window.session.messages()]
    window.session.set_model("no-such-model")
    errors: list[str] = []
    window.session.error.connect(errors.append)
    assert not window.session.edit_and_resend(window.session.messages()[0].id, "What is 3 + 3?")
    assert errors and "no-such-model" in errors[0]
    assert [(m.role, m.content) for m in window.session.messages()] == before  # nothing deleted
    assert len(window.core.conversations.all_messages(window.session.conversation_id)) == 2  # nothing added


def test_markdown_code_block_has_highlighting_and_copy(qtbot, window):
    from PySide6.QtGui import QGuiApplication

    conv = window.core.conversations.create(title="Code")
    window.core.conversations.add_message(conv.id, "user", "show code")
    window.core.conversations.add_message(conv.id, "assistant", "Here:\n\n```python\nprint('hi')\n```\n\nDone.",
                                          stats=GenerationStats(
                                              prompt_tokens=5, cached_tokens=0, completion_tokens=9, ttft_ms=12.0,
                                              prompt_ms=4.0, tokens_per_s=100.0, total_ms=100.0,
                                              finish_reason="stop", speculative="draft", drafted=8, accepted=6,
                                              acceptance_rate=0.75,
                                              router={"tier": "small", "policy": "auto", "score": 0.2}).as_dict())
    window.conversations.refresh()
    window.session.open(conv.id)
    reply = window.chat_view.message_widgets[-1]
    blocks = reply.body.code_blocks()
    assert len(blocks) == 1 and blocks[0].code == "print('hi')"
    assert "<span" in blocks[0].body.text(), "the code is highlighted"
    qtbot.mouseClick(blocks[0].copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "print('hi')"
    assert "draft 75% accepted" in reply.footer.text()
    assert reply.tier.isVisibleTo(window) and reply.tier.text() == "small"
    assert "0.20" in reply.tier.toolTip()


def test_error_is_shown_in_the_window_for_a_truncated_model(qtbot, window, starter, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(starter.read_bytes()[: 4 << 20])
    with qtbot.waitSignal(window.loader.failed, timeout=10_000):
        window.picker.select(str(broken))
        window.picker.loadRequested.emit(str(broken))
    assert window.banner.isVisibleTo(window)
    assert "broken.gguf" in window.banner.text
    assert "Traceback" not in window.banner.text
    # sending with the broken file selected says so too, and stores nothing
    before = window.core.conversations.list()
    window.composer.input.setPlainText("hello")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    assert window.banner.isVisibleTo(window)
    assert window.core.conversations.list() == before


def test_screenshot_of_a_regenerated_reply_with_its_versions(qtbot, window, tmp_path):
    import os
    from pathlib import Path

    from PySide6.QtGui import QImage

    from inference.sampling import SamplingOptions

    window.core.settings.sampling = SamplingOptions(temperature=0.8, max_tokens=80)  # a new seed each reply
    window.resize(1120, 740)
    first = send(qtbot, window, "Suggest a name for a black cat, with one sentence on why.")
    with qtbot.waitSignal(window.session.replyFinished, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.chat_view.message_widgets[-1].regenerate_button, Qt.MouseButton.LeftButton)
    second = blocker.args[0]
    shown = window.chat_view.message_widgets[-1]
    assert shown.message.id == second.id and shown.body.text == second.content
    assert shown.versions.isVisibleTo(window) and shown.versions.label.text() == "2/2"
    assert window.core.conversations.message(first.id).content == first.content
    out = Path(os.environ.get("EMBER_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "versions.png"
    assert window.grab().save(str(path))
    assert QImage(str(path)).width() >= 700
