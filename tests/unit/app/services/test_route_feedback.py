"""The labelling rule (which turn labels which routed reply) and the router learning from it, on real SQLite with
stored messages and decisions (no model)."""

from __future__ import annotations

import threading

import pytest

from app.core import Ember
from inference.route_weights import model_name, shipped_model
from app.services.route_feedback import give_feedback, turn_feedback
from app.services.surface import router_of

SIGNALS = {"log_words": 2.0, "math": 1.0, "numbers": 0.75, "glimpse_prob_first": 0.3, "glimpse_prob_min": 0.2}


@pytest.fixture
def core():
    c = Ember.open()
    yield c
    c.close()


def _exchange(core, conv_id: int, question: str, *, policy: str = "auto", tier: str = "small",
              forced: bool = False, escalated: bool = False):
    user = core.conversations.add_message(conv_id, "user", question)
    reply = core.conversations.add_message(conv_id, "assistant", "an answer")
    router_of(core).store.record(policy=policy, tier=tier, score=0.2, threshold=0.5, signals=SIGNALS,
                                 decision_ms=1.0, conversation_id=conv_id, message_id=reply.id, forced=forced,
                                 escalated=escalated)
    return user, reply


def _conv(core) -> int:
    return core.conversations.create(title="t", model="default", settings={}).id


def test_large_with_the_same_question_or_none_escalates_the_small_reply(core):
    conv = _conv(core)
    _, reply = _exchange(core, conv, "What is 17 times 23?")
    assert turn_feedback(core, conv, text="What is 18 times 23?", forced="large", reply_to=None) is None
    for text in ("", " what is 17  times 23? "):
        fb = turn_feedback(core, conv, text=text, forced="large", reply_to=None)
        assert fb.wrong and fb.source == "large-prefix" and fb.decision.message_id == reply.id
    before = router_of(core).learned_score("auto", SIGNALS)
    assert give_feedback(core, fb)
    assert not give_feedback(core, fb)  # one label per decision
    assert router_of(core).store.label(fb.decision.id).wrong
    assert router_of(core).learned_score("auto", SIGNALS) > before
    assert router_of(core).learner("auto").updates == 1


def test_an_ordinary_message_accepts_the_small_reply_once_and_an_escalation_overrides_it(core):
    conv = _conv(core)
    _, reply = _exchange(core, conv, "What is 2 plus 2?")
    fb = turn_feedback(core, conv, text="thanks, and 3 plus 3?", forced=None, reply_to=None)
    assert fb is not None and not fb.wrong and fb.source == "next-message"
    assert give_feedback(core, fb) and not give_feedback(core, fb)
    assert turn_feedback(core, conv, text="hi", forced="small", reply_to=None) is None  # not ordinary
    user = core.conversations.message(reply.parent_id)
    up = turn_feedback(core, conv, text="", forced="large", reply_to=user.id, source="ask-large")
    assert up.wrong and up.source == "ask-large" and up.decision.id == fb.decision.id
    assert give_feedback(core, up)
    assert router_of(core).store.label(fb.decision.id).wrong
    assert router_of(core).store.label_counts() == {"auto": {"wrong": 1, "right": 0}}


def test_forced_escalated_and_unrouted_replies_give_no_label(core):
    conv = _conv(core)
    _exchange(core, conv, "q1", policy="forced", forced=True)
    assert turn_feedback(core, conv, text="next", forced=None, reply_to=None) is None
    assert turn_feedback(core, conv, text="", forced="large", reply_to=None) is None
    _exchange(core, conv, "q2", tier="large", escalated=True)
    assert turn_feedback(core, conv, text="", forced="large", reply_to=None) is None
    user, _ = _exchange(core, conv, "q3")
    assert turn_feedback(core, conv, text="q3", forced=None, reply_to=user.id) is None  # a plain regenerate
    core.conversations.add_message(conv, "assistant", "no decision")
    assert turn_feedback(core, conv, text="next", forced=None, reply_to=None) is None


def test_scoring_uses_the_learned_model_only_when_learning_is_on_and_reset_goes_back(core):
    conv = _conv(core)
    router = router_of(core)
    shipped = shipped_model("auto", probe=False)
    assert router.score_model("auto", SIGNALS) == (shipped, False)  # nothing learned yet
    _exchange(core, conv, "What is 17 times 23?")
    give_feedback(core, turn_feedback(core, conv, text="", forced="large", reply_to=None))
    model, learned = router.score_model("auto", SIGNALS)
    assert learned and model.score(SIGNALS) > shipped.score(SIGNALS)
    if model_name("auto", probe=True) != "auto":  # a probe model ships: signals with the probe learn apart
        assert router.score_model("auto", {**SIGNALS, "hidden_probe": 0.5}) == (shipped_model("auto", probe=True),
                                                                                 False)
    core.settings.router.learn = False
    assert router.score_model("auto", SIGNALS) == (shipped, False)
    core.settings.router.learn = True
    status = router.learning_status()
    assert status["auto"]["wrong"] == 1 and status["auto"]["models"]["auto"]["updates"] == 1
    assert status["cascade"]["models"]["cascade"]["updates"] == 0
    learned_auroc, shipped_auroc = (status["auto"]["models"]["auto"][k] for k in ("learned_auroc", "shipped_auroc"))
    assert shipped_auroc is None or learned_auroc >= shipped_auroc
    router.reset_learning()
    assert router.score_model("auto", SIGNALS) == (shipped, False)
    assert router.store.load_learned("auto") is None
    assert router.learning_status()["auto"]["wrong"] == 1  # the labels stay


def test_the_learned_state_is_restored_by_a_new_router_and_labels_are_thread_safe(core):
    from app.routing import Router

    conv = _conv(core)
    feedback = []
    for i in range(8):
        _exchange(core, conv, f"What is {i} times 23?")
        feedback.append(turn_feedback(core, conv, text="", forced="large", reply_to=None))
    threads = [threading.Thread(target=give_feedback, args=(core, fb)) for fb in feedback]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    learned = router_of(core).learner("auto")
    assert learned.updates == 8
    fresh = Router(core)
    assert fresh.learned_score("auto", SIGNALS) == learned.score(SIGNALS) and fresh.learner("auto").updates == 8
