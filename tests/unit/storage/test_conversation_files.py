import json

import pytest

from storage.conversation_files import (ConversationFileError, export_json, export_markdown, import_file,
                                        import_text, write_export)
from storage.conversations import ConversationStore
from storage.database import open_database

STATS = {"completion_tokens": 12, "tokens_per_s": 70.5, "ttft_ms": 225.0, "finish_reason": "stop"}


@pytest.fixture()
def store(tmp_path):
    return ConversationStore(open_database(tmp_path / "ember.db"))


def _conversation_with_versions(store):
    conv = store.create(title="Capitals", model="m", settings={"system_prompt": "Be brief.", "sampling": {"seed": 1}})
    q = store.add_message(conv.id, "user", "Capital of France?")
    store.add_message(conv.id, "assistant", "Paris.", model="m", stats=STATS)
    store.show_branch(conv.id, q.id)
    store.add_message(conv.id, "assistant", "It is Paris --> a city.\n\n## Heading in a reply", model="m",
                      stats={**STATS, "completion_tokens": 9})
    store.add_message(conv.id, "user", "And Germany?")
    return store.get(conv.id)


def _shape(store, conv_id):
    return ([(m.role, m.content, m.model, m.stats, m.created) for m in store.messages(conv_id)],
            sorted((m.role, m.content) for m in store.all_messages(conv_id)))


def test_json_round_trip_keeps_every_version_the_branch_shown_and_stats(store, tmp_path):
    conv = _conversation_with_versions(store)
    path = write_export(store, conv.id, tmp_path / "chat.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "ember-conversation" and len(doc["messages"]) == 4
    imported = import_file(store, path)
    assert imported.id != conv.id
    assert (imported.title, imported.model, imported.settings) == (conv.title, conv.model, conv.settings)
    assert _shape(store, imported.id) == _shape(store, conv.id)
    assert store.versions(imported.id)[store.messages(imported.id)[1].id].count == 2
    again = export_json(store, imported.id)
    assert [{k: v for k, v in m.items() if k not in ("id", "parent")} for m in again["messages"]] == \
        [{k: v for k, v in m.items() if k not in ("id", "parent")} for m in doc["messages"]]


def test_markdown_shows_the_branch_with_stats_and_imports_back(store, tmp_path):
    conv = _conversation_with_versions(store)
    text = export_markdown(store, conv.id)
    assert text.startswith("# Capitals\n")
    assert "> **System prompt:** Be brief." in text
    assert "(version 2 of 2)" in text and "9 tokens · 70.5 tok/s · first token 225 ms" in text
    assert "Paris." not in text.replace("It is Paris", ""), "only the branch shown"
    path = write_export(store, conv.id, tmp_path / "chat.md")
    imported = import_file(store, path)
    assert [(m.role, m.content, m.stats) for m in store.messages(imported.id)] == \
        [(m.role, m.content, m.stats) for m in store.messages(conv.id)]
    assert imported.title == "Capitals" and imported.settings == conv.settings


@pytest.mark.parametrize("text, problem", [
    ("{not json", "not valid JSON"),
    ('{"format": "something-else"}', "not an Ember conversation"),
    ('{"format": "ember-conversation", "version": 99}', "newer Ember"),
    ('{"format": "ember-conversation", "version": 1, "conversation": {"title": "t"}, "messages": '
     '[{"id": 1, "parent": null, "role": "robot", "content": "x"}]}', "messages[0].role"),
    ('{"format": "ember-conversation", "version": 1, "conversation": {"title": "t"}, "messages": '
     '[{"id": 1, "parent": 7, "role": "user", "content": "x"}]}', "messages[0].parent"),
    ('{"format": "ember-conversation", "version": 1, "conversation": {"title": "t"}, "messages": '
     '[{"id": 1, "parent": null, "role": "user", "content": "x"}, {"id": 2, "parent": 1, "role": "assistant", '
     '"content": 5}]}', "messages[1].content"),
    ('{"format": "ember-conversation", "version": 1, "conversation": {"title": "t"}, "messages": [], '
     '"shown": 3}', '"shown"'),
    ("# Notes\n\nJust some Markdown.\n", "ember:message"),
    ("# T\n\n<!-- ember:message {\"role\": \"user\" -->\n### You\n\nhi\n", "damaged"),
])
def test_malformed_files_are_refused_clearly_and_nothing_is_written(store, text, problem):
    before = store.list()
    with pytest.raises(ConversationFileError) as info:
        import_text(store, text, name="bad.json")
    assert problem in str(info.value) and "bad.json" in str(info.value)
    assert store.list() == before


def test_unreadable_files_are_refused(store, tmp_path):
    with pytest.raises(ConversationFileError, match="Cannot read"):
        import_file(store, tmp_path / "missing.json")
    binary = tmp_path / "model.gguf"
    binary.write_bytes(b"GGUF\xff\xfe\x00")
    with pytest.raises(ConversationFileError, match="not UTF-8"):
        import_file(store, binary)
    assert store.list() == []
