import threading

import pytest

from storage.conversations import ConversationStore, StreamingMessage
from storage.database import open_database
from storage.errors import NotFoundError


@pytest.fixture()
def store(tmp_path):
    return ConversationStore(open_database(tmp_path / "ember.db"))


def test_conversation_round_trip(store):
    conv = store.create(title="Trip", model="m", settings={"system_prompt": "be brief"})
    store.add_message(conv.id, "user", "hello")
    store.add_message(conv.id, "assistant", "hi", model="m", stats={"completion_tokens": 1})
    msgs = store.messages(conv.id)
    assert [(m.role, m.content) for m in msgs] == [("user", "hello"), ("assistant", "hi")]
    assert msgs[1].stats == {"completion_tokens": 1}
    assert store.get(conv.id).settings == {"system_prompt": "be brief"}
    renamed = store.update(conv.id, title="Renamed")
    assert renamed.title == "Renamed"
    assert store.list()[0].id == conv.id


def test_list_orders_by_last_update(store):
    a = store.create(title="a")
    b = store.create(title="b")
    store.add_message(a.id, "user", "later")
    assert [c.title for c in store.list()] == ["a", "b"]
    assert b.id != a.id


def test_delete_removes_messages(store):
    conv = store.create()
    store.add_message(conv.id, "user", "x")
    store.delete(conv.id)
    with pytest.raises(NotFoundError):
        store.get(conv.id)
    assert store.search("x") == []


def test_bad_role_is_refused(store):
    conv = store.create()
    with pytest.raises(ValueError):
        store.add_message(conv.id, "robot", "x")


def test_full_text_search_finds_words_and_ignores_syntax(store):
    conv = store.create()
    store.add_message(conv.id, "user", "How do I bake sourdough bread?")
    store.add_message(conv.id, "assistant", "Start with a lively starter.")
    hits = store.search("sourdough")
    assert len(hits) == 1 and hits[0].conversation_id == conv.id and "[sourdough]" in hits[0].snippet
    assert store.search('bread" OR "') == []  # quotes in user text are not FTS syntax
    store.set_message_content(hits[0].message_id, "pizza dough")
    assert store.search("sourdough") == [] and len(store.search("pizza")) == 1


def test_a_new_version_keeps_the_old_branch_and_switching_shows_either(store):
    conv = store.create()
    q1 = store.add_message(conv.id, "user", "q1")
    a1 = store.add_message(conv.id, "assistant", "a1")
    q2 = store.add_message(conv.id, "user", "q2")
    a2 = store.add_message(conv.id, "assistant", "a2")
    # regenerate the last reply: a second child of q2
    store.show_branch(conv.id, q2.id)
    assert [m.content for m in store.messages(conv.id)] == ["q1", "a1", "q2"]
    a2b = store.add_message(conv.id, "assistant", "a2b")
    assert [m.content for m in store.messages(conv.id)] == ["q1", "a1", "q2", "a2b"]
    versions = store.versions(conv.id)
    assert (versions[a2b.id].index, versions[a2b.id].count, versions[a2b.id].ids) == (2, 2, (a2.id, a2b.id))
    assert versions[q1.id].count == 1 and versions[a1.id].count == 1
    # edit the first message: a second first message, with its own reply
    store.show_branch(conv.id, None)
    assert store.messages(conv.id) == []
    q1b = store.add_message(conv.id, "user", "q1 edited")
    assert q1b.parent_id is None
    store.add_message(conv.id, "assistant", "a1b")
    assert [m.content for m in store.messages(conv.id)] == ["q1 edited", "a1b"]
    assert store.versions(conv.id)[q1b.id].index == 2
    # back to the first version: its latest branch (the regenerated reply) is shown again
    store.show_version(q1.id)
    assert [m.content for m in store.messages(conv.id)] == ["q1", "a1", "q2", "a2b"]
    store.show_version(a2.id)
    assert [m.content for m in store.messages(conv.id)][-1] == "a2"
    assert len(store.all_messages(conv.id)) == 7, "nothing was deleted"


def test_branch_of_another_conversation_is_refused(store):
    a, b = store.create(), store.create()
    m = store.add_message(a.id, "user", "x")
    with pytest.raises(ValueError):
        store.show_branch(b.id, m.id)
    with pytest.raises(ValueError):
        store.add_message(b.id, "user", "y", parent_id=m.id)
    assert store.messages(b.id) == []


def test_streaming_message_flushes_on_interval(store, monkeypatch):
    conv = store.create()
    clock = [100.0]
    monkeypatch.setattr("storage.conversations.time.monotonic", lambda: clock[0])
    stream = StreamingMessage(store, conv.id, model="m", flush_interval=0.5)
    stream.append("Hel")
    assert store.message(stream.message.id).content == ""  # not yet due
    clock[0] += 0.5
    stream.append("lo")
    assert store.message(stream.message.id).content == "Hello"
    stream.append(" world")
    final = stream.finish({"finish_reason": "stop"})
    assert final.content == "Hello world" and final.stats == {"finish_reason": "stop"}


def test_store_is_safe_across_threads(store):
    conv = store.create()

    def writer(n):
        for i in range(20):
            store.add_message(conv.id, "user", f"{n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.messages(conv.id)) == 80
