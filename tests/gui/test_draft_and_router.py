"""The model picker's draft choice (only compatible library models) and router choice (reaches the turn), and the
context notice shown once when a conversation outgrows the model's context."""

from __future__ import annotations

from pathlib import Path

from inference.requantize import requantized_copy
from models.starter import STARTER_NAME
from tests.gui.gui_helpers import LOAD_TIMEOUT_MS, send


def _drafts_of(qtbot, window, name: str) -> list[str]:
    with qtbot.waitSignal(window.loader.draftsFound, timeout=LOAD_TIMEOUT_MS,
                          check_params_cb=lambda options: options.model == name):
        window.picker.select(name)
    return window.picker.draft.choices()


def test_draft_choice_lists_only_compatible_models_and_reaches_the_reply(qtbot, window, starter: Path,
                                                                          tmp_path: Path):
    core = window.core
    q8 = core.library.add(requantized_copy(starter, tmp_path / "rq", "q8_0", threads=1), name="starter-q8")
    junk = tmp_path / "broken.gguf"  # a catalogued file that is no (longer a) GGUF file
    junk.write_bytes(b"not a gguf file" * 1000)
    core.db["models"].insert({"name": "broken", "path": str(junk), "size": junk.stat().st_size, "aliases": "[]",
                              "added": "2024-01-01T00:00:00"})
    window.refresh_models()

    # the Q8_0 copy is larger than the starter and shares its vocabulary: the starter can draft for it
    assert _drafts_of(qtbot, window, q8.name) == ["off", "lookup", STARTER_NAME]
    assert window.picker.draft.current() == "off"  # the speculative settings' default
    # the starter gets no draft: the copy is larger, the broken file unreadable
    assert _drafts_of(qtbot, window, STARTER_NAME) == ["off", "lookup"]

    assert _drafts_of(qtbot, window, q8.name)[-1] == STARTER_NAME
    window.picker.draft.select(STARTER_NAME)
    assert window.session.draft == STARTER_NAME
    spec = window.session.spec()
    assert spec.name == q8.name and spec.speculative.draft_name == STARTER_NAME
    reply = send(qtbot, window, "Count from one to ten.")
    assert reply.model == q8.name
    assert reply.stats["speculative"] == "draft"  # the adaptive controller may still decide not to draft

    window.picker.draft.select("lookup")
    assert window.session.spec().speculative.mode == "lookup"
    window.picker.draft.select("off")
    assert window.session.spec().speculative is None


def test_router_choice_reaches_the_turn(qtbot, window):
    from storage.routing import RoutingStore

    core = window.core
    core.settings.router.default_threshold = 1.0  # never escalate: the remote tier below is never called
    assert window.picker.router.current_policy() == "off"
    window.picker.router.choose("auto", "http://127.0.0.1:9/v1")
    assert window.session.route.policy == "auto" and window.session.route.large == "http://127.0.0.1:9/v1"
    reply = send(qtbot, window, "What is the capital of France?")
    router = reply.stats["router"]
    assert router["policy"] == "auto" and router["tier"] == "small" and "score" in router
    records = RoutingStore(core.db).list(conversation_id=reply.conversation_id)
    assert [(r.policy, r.tier, r.message_id) for r in records] == [("auto", "small", reply.id)]
    assert records[0].large_target == "http://127.0.0.1:9/v1"

    window.picker.router.choose("off")
    reply = send(qtbot, window, "And of Italy?")
    assert "router" not in reply.stats or reply.stats["router"] is None

    window.picker.router.choose("cascade", "no-such-model")  # a bad large tier: said in the window, nothing sent
    window.composer.input.setPlainText("Hello")
    assert not window.session.send("Hello")
    assert window.banner.isVisible() and "no-such-model" in window.banner.text


def test_router_choice_is_remembered_per_conversation(qtbot, window):
    core = window.core
    core.settings.router.default_threshold = 1.0  # never escalate
    window.session.new()
    window.picker.router.choose("auto", "http://127.0.0.1:9/v1")
    first = send(qtbot, window, "What is the capital of France?").conversation_id
    window.session.new()
    assert window.picker.router.current_policy() == "auto"  # a new chat starts with the current choice
    window.picker.router.choose("off")
    second = send(qtbot, window, "What is the capital of Spain?").conversation_id
    assert first != second

    window.session.open(first)
    assert window.picker.router.current_policy() == "auto"
    assert window.picker.router.current_large() == "http://127.0.0.1:9/v1"
    assert window.session.route.policy == "auto"
    assert send(qtbot, window, "And of Italy?").stats["router"]["policy"] == "auto"
    window.session.open(second)
    assert window.picker.router.current_policy() == "off" and window.session.route.policy == "off"
    window.picker.router.choose("cascade", "http://127.0.0.1:9/v1")  # changed without sending a message
    window.session.open(first)
    window.session.open(second)
    assert window.picker.router.current_policy() == "cascade" and window.session.route.policy == "cascade"


def test_a_cascade_streams_and_an_escalation_replaces_the_shown_text(qtbot, window):
    core = window.core
    core.settings.router.budget = 1.0  # always escalate (to a second engine running the same file)
    window.picker.router.choose("cascade", STARTER_NAME)
    shown, retracted = [], []
    window.session.replyText.connect(shown.append)
    window.session.replyRetracted.connect(retracted.append)
    reply = send(qtbot, window, "What is the capital of France?")
    assert reply.stats["router"]["tier"] == "large" and reply.stats["router"]["policy"] == "cascade"
    assert len(retracted) == 1 and "large tier" in retracted[0]
    assert len("".join(shown)) > len(reply.content)  # the small answer was shown first, then replaced
    assert window.chat_view.streaming_text == reply.content  # what stays on screen is what was stored


def test_context_notice_is_shown_once_per_conversation(qtbot, window, caplog):
    from app.services.chat import CONTEXT_NOTICE

    store = window.core.conversations
    conv = store.create(title="A long chat")
    filler = "The quick brown fox jumps over the lazy dog. " * 30
    for i in range(4):
        store.add_message(conv.id, "user", f"Question {i}: {filler}")
        store.add_message(conv.id, "assistant", f"Answer {i}: {filler}", stats={"finish_reason": "stop"})
    window.conversations.refresh()
    window.session.open(conv.id)
    reply = send(qtbot, window, "Summarise in one word.")
    assert reply.stats.get("trimmed_messages")
    assert window.banner.isVisible() and window.banner.kind == "info" and window.banner.text == CONTEXT_NOTICE
    reply = send(qtbot, window, "Again, one word.")
    assert reply.stats.get("trimmed_messages")
    assert not window.banner.isVisible()
    assert sum(CONTEXT_NOTICE in r.getMessage() for r in caplog.records) == 1


def test_ask_the_large_model_on_a_small_reply_writes_a_large_version_and_labels_it(qtbot, window, starter: Path,
                                                                                    tmp_path: Path):
    from app.services.surface import router_of

    core = window.core
    q8 = core.library.add(requantized_copy(starter, tmp_path / "rq", "q8_0", threads=1), name="starter-q8")
    core.settings.router.default_threshold = 1.0  # never escalate by itself
    window.picker.router.choose("auto", q8.name)
    small = send(qtbot, window, "What is 17 times 23?")
    assert small.stats["router"]["tier"] == "small"
    widget = window.chat_view.message_widgets[-1]
    assert widget.message.id == small.id
    assert widget.ask_large_button.isVisible() and widget.regenerate_button.isVisible()
    assert "top signals:" in widget.tier.toolTip() and "threshold" in widget.tier.toolTip()
    decision = router_of(core).store.latest_decision(message_id=small.id)
    before = router_of(core).learned_score("auto", decision.signals)

    with qtbot.waitSignal(window.session.replyFinished, timeout=120_000) as blocker:
        widget.ask_large_button.click()
    large = blocker.args[0]
    assert large.id != small.id and large.parent_id == small.parent_id  # a new version of the same reply
    assert large.stats["router"]["tier"] == "large" and large.stats["router"]["model"] == q8.name
    assert window.session.versions()[large.id].count == 2
    last = window.chat_view.message_widgets[-1]
    assert last.message.id == large.id and not last.ask_large_button.isVisible()  # the large tier wrote it
    label = router_of(core).store.label(decision.id)
    assert label is not None and label.wrong and label.source == "ask-large" and label.message_id == small.id
    assert router_of(core).learned_score("auto", decision.signals) > before

    # "/large" alone in the composer: the last question again, as a new version of its small reply
    small = send(qtbot, window, "And 18 times 23?")
    assert small.stats["router"]["tier"] == "small"
    large = send(qtbot, window, "/large")
    assert large.parent_id == small.parent_id and large.stats["router"]["tier"] == "large"
    assert [w.message.id for w in window.chat_view.message_widgets][-2:] == [small.parent_id, large.id]
    label = router_of(core).store.label(router_of(core).store.latest_decision(message_id=small.id).id)
    assert label.wrong and label.source == "large-prefix"


def test_settings_dialog_resets_what_the_router_learned(qtbot, core):
    from app.services.surface import router_of
    from ui.settings_dialog import SettingsDialog

    router = router_of(core)
    router.store.save_learned("auto", {"bias": 3.0, "weights": {}, "updates": 4})
    assert router.score_model("auto", {})[1]  # the learned state is in use
    dialog = SettingsDialog(core.settings, core.paths.settings, core.paths.home,
                            reset_learning=router.reset_learning)
    qtbot.addWidget(dialog)
    assert dialog.reset_learning_button.text() == "Reset what the router learned"
    dialog.reset_learning_button.click()
    assert "shipped weights" in dialog.reset_note.text()
    assert router.score_model("auto", {})[1] is False and router.store.load_learned("auto") is None
