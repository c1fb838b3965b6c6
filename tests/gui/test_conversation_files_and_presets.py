"""Export and import of conversations from the window, and system-prompt presets, on the real starter model."""

from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from storage.presets import PresetStore
from tests.gui.gui_helpers import REPLY_TIMEOUT_MS, send


def _menu_action(window, conv_id: int | None, text: str):
    item = next((window.conversations.list.item(i) for i in range(window.conversations.list.count())
                 if window.conversations.list.item(i).data(Qt.ItemDataRole.UserRole) == conv_id), None)
    menu = window.conversations.context_menu(item)
    return next(a for a in menu.actions() if a.text() == text)


def _choose(qtbot, window, path: Path, signal):
    dialog = window.conversation_files.dialog
    assert dialog is not None and dialog.isVisible()
    with qtbot.waitSignal(signal, timeout=10_000) as blocker:
        dialog.selectFile(str(path))
        dialog.accept()
    return blocker.args[0]


def test_export_and_import_round_trip_keeps_versions(qtbot, window, tmp_path):
    send(qtbot, window, "Name a colour.")
    with qtbot.waitSignal(window.session.replyFinished, timeout=REPLY_TIMEOUT_MS):
        assert window.session.regenerate()
    conv_id = window.session.conversation_id
    store = window.core.conversations
    _menu_action(window, conv_id, "Export as Ember JSON…").trigger()
    written = _choose(qtbot, window, tmp_path / "colour.json", window.conversation_files.exported)
    assert Path(written) == tmp_path / "colour.json"
    doc = json.loads(Path(written).read_text(encoding="utf-8"))
    assert len(doc["messages"]) == 3 and doc["messages"][1]["stats"]["completion_tokens"] > 0
    _menu_action(window, conv_id, "Export as Markdown…").trigger()
    markdown = Path(_choose(qtbot, window, tmp_path / "colour.md", window.conversation_files.exported))
    assert "(version 2 of 2)" in markdown.read_text(encoding="utf-8")

    _menu_action(window, None, "Import conversation…").trigger()
    imported = _choose(qtbot, window, tmp_path / "colour.json", window.conversation_files.imported)
    assert imported != conv_id and window.session.conversation_id == imported
    assert imported in window.conversations.ids()
    assert [(m.role, m.content, m.stats) for m in store.messages(imported)] == \
        [(m.role, m.content, m.stats) for m in store.messages(conv_id)]
    reply = window.chat_view.message_widgets[-1]
    assert reply.versions.label.text() == "2/2", "the imported conversation keeps both versions"
    qtbot.mouseClick(reply.versions.previous_button, Qt.MouseButton.LeftButton)
    earlier = window.chat_view.message_widgets[-1]
    assert earlier.message.id != reply.message.id and earlier.versions.label.text() == "1/2"
    assert earlier.body.text == store.all_messages(imported)[1].content, "the first reply, as stored"


def test_a_malformed_import_is_refused_in_the_banner_and_writes_nothing(qtbot, window, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"format": "ember-conversation", "version": 1, "conversation": {"title": "x"}, '
                   '"messages": [{"id": 1, "parent": 5, "role": "user", "content": "hi"}]}', encoding="utf-8")
    before = window.core.conversations.list()
    with qtbot.waitSignal(window.conversation_files.error, timeout=10_000):
        window.conversation_files.import_from(bad)
    assert window.banner.isVisible() and "broken.json: messages[0].parent" in window.banner.text
    assert window.core.conversations.list() == before


def test_presets_are_saved_picked_edited_and_deleted(qtbot, window, tmp_path):
    presets = PresetStore(window.core.conversations.database)
    dialog = window.edit_conversation_settings()
    dialog.system_prompt.setPlainText("Answer like a pirate.")
    editor = dialog.open_presets(new_prompt=dialog.system_prompt.toPlainText())
    assert editor.prompt.toPlainText() == "Answer like a pirate."
    editor.name.setText("Pirate")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    assert [p.name for p in presets.list()] == ["Pirate"]
    assert dialog.preset.currentText() == "Pirate", "the prompt now matches the saved preset"
    editor.new()
    editor.name.setText("Brief")
    editor.prompt.setPlainText("Answer in one short sentence.")
    assert editor.save()
    editor.name.setText("")
    assert not editor.save() and "needs a name" in editor.error.text()
    editor.close()

    dialog.pick_preset("Brief")
    assert dialog.system_prompt.toPlainText() == "Answer in one short sentence."
    dialog.form.editors["max_tokens"].setValue(8)
    dialog.save()
    reply = send(qtbot, window, "Name a fruit.")
    conv = window.session.conversation()
    assert conv.settings["system_prompt"] == "Answer in one short sentence." and reply.content

    # edit (rename and change) and delete in the editor; the conversation keeps its copy of the prompt
    editor = window.edit_conversation_settings().open_presets()
    editor.list.setCurrentRow(editor.names().index("Brief"))
    editor.name.setText("Short")
    editor.prompt.setPlainText("Be short.")
    assert editor.save()
    assert [(p.name, p.prompt) for p in presets.list()] == [("Pirate", "Answer like a pirate."),
                                                            ("Short", "Be short.")]
    qtbot.mouseClick(editor.delete_button, Qt.MouseButton.LeftButton)
    assert [p.name for p in presets.list()] == ["Pirate"]
    assert window.session.conversation().settings["system_prompt"] == "Answer in one short sentence."


def test_screenshot_of_the_presets_editor(qtbot, window, tmp_path):
    presets = PresetStore(window.core.conversations.database)
    presets.save("Concise", "Answer in one or two short sentences. No preamble.")
    presets.save("Python tutor", "You are a patient Python tutor. Explain each step and show a short example.")
    presets.save("Translator", "Translate what I write into French. Reply with the translation only.")
    dialog = window.edit_conversation_settings()
    editor = dialog.open_presets()
    editor.list.setCurrentRow(editor.names().index("Python tutor"))
    editor.resize(720, 420)
    qtbot.waitExposed(editor)
    out = Path(os.environ.get("EMBER_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "presets.png"
    assert editor.grab().save(str(path))
    image = QImage(str(path))
    assert image.width() >= 600 and image.height() >= 350
    assert editor.name.text() == "Python tutor" and "patient Python tutor" in editor.prompt.toPlainText()
