"""Conversation list: search (titles and full text), rename, delete, new chat."""

from __future__ import annotations

from PySide6.QtCore import Qt

from ui import dialogs


def _seed(core):
    store = core.conversations
    a = store.create(title="Trip to Lisbon")
    store.add_message(a.id, "user", "Where should I eat pastel de nata?")
    b = store.create(title="Python help")
    store.add_message(b.id, "user", "How do I reverse a list?")
    store.add_message(b.id, "assistant", "Use reversed() or slicing with a negative step.")
    return a, b


def test_search_matches_titles_and_message_text(qtbot, window):
    a, b = _seed(window.core)
    window.conversations.refresh()
    assert set(window.conversations.ids()) == {a.id, b.id}
    window.conversations.search.setText("slicing")
    qtbot.waitUntil(lambda: window.conversations.ids() == [b.id], timeout=2000)
    assert "slicing" in window.conversations.list.item(0).text()
    window.conversations.search.setText("lisbon")
    qtbot.waitUntil(lambda: window.conversations.ids() == [a.id], timeout=2000)
    window.conversations.search.clear()
    qtbot.waitUntil(lambda: len(window.conversations.ids()) == 2, timeout=2000)


def test_ctrl_k_focuses_search_and_ctrl_n_starts_a_new_chat(qtbot, window):
    a, _ = _seed(window.core)
    window.conversations.refresh()
    window.session.open(a.id)
    assert len(window.chat_view.message_widgets) == 1
    qtbot.keyClick(window.composer.input, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert window.conversations.search.hasFocus()
    qtbot.keyClick(window.composer.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.session.conversation_id is None
    assert window.chat_view.currentWidget() is window.chat_view.empty


def test_selecting_renaming_and_deleting(qtbot, window, monkeypatch):
    a, b = _seed(window.core)
    window.conversations.refresh()
    row = window.conversations.ids().index(a.id)
    window.conversations.list.setCurrentRow(row)
    assert window.session.conversation_id == a.id
    assert window.chat_view.message_widgets[0].body.text == "Where should I eat pastel de nata?"

    item = window.conversations.list.item(row)
    item.setText("Lisbon food")  # what the inline editor does when the user types a new title
    qtbot.waitUntil(lambda: window.core.conversations.get(a.id).title == "Lisbon food", timeout=2000)
    assert "Lisbon food" in [window.conversations.list.item(i).text() for i in range(2)]

    monkeypatch.setattr(dialogs, "confirm", lambda *a, **k: False)
    assert not window.conversations.delete(a.id)
    assert a.id in window.conversations.ids()
    monkeypatch.setattr(dialogs, "confirm", lambda *a, **k: True)
    assert window.conversations.delete(a.id)
    assert window.conversations.ids() == [b.id]
    assert window.session.conversation_id is None, "deleting the open chat leaves an empty new chat"
    assert window.core.conversations.list()[0].id == b.id
