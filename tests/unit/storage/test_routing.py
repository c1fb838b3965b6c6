"""The routing decisions table and the scores the threshold is calibrated on."""

from storage.database import open_database
from storage.migrations import applied
from storage.routing import RoutingStore


def test_migration_creates_the_table_and_records_round_trip():
    db = open_database(":memory:")
    assert "m004_routing_decisions" in applied(db)
    store = RoutingStore(db)
    rid = store.record(policy="auto", tier="large", score=0.8, threshold=0.6, signals={"math": 1.0},
                       decision_ms=12.5, conversation_id=None, message_id=None, escalated=True,
                       small_model="s", large_target="http://x/v1")
    store.record(policy="auto", tier="large", score=None, threshold=None, signals={}, decision_ms=0.0,
                 forced=True)
    store.record(policy="cascade", tier="small", score=0.1, threshold=0.6, signals={}, decision_ms=1.0)
    rec = store.list()[-1]
    assert rec.id == rid and rec.signals == {"math": 1.0} and rec.escalated and rec.large_target == "http://x/v1"
    assert store.recent_scores("auto") == [0.8]  # forced decisions are not calibration data
    assert store.recent_scores("cascade") == [0.1]


def test_one_label_per_decision_and_an_escalation_overrides_an_acceptance():
    db = open_database(":memory:")
    assert "m010_route_labels" in applied(db)
    store = RoutingStore(db)
    first = store.record(policy="auto", tier="small", score=0.2, threshold=0.5, signals={"math": 1.0},
                         decision_ms=1.0, conversation_id=7, message_id=70)
    store.record(policy="auto", tier="small", score=0.3, threshold=0.5, signals={}, decision_ms=1.0,
                 conversation_id=7, message_id=71)
    assert store.latest_decision(conversation_id=7).message_id == 71
    decision = store.latest_decision(message_id=70)
    assert decision.id == first and store.decision(first) == decision and store.decision(999) is None
    assert store.label(first) is None
    assert store.add_label(decision, wrong=False, source="next-message")
    assert not store.add_label(decision, wrong=False, source="next-message")  # once
    assert store.label(first).wrong is False
    assert store.add_label(decision, wrong=True, source="ask-large")  # the escalation wins
    label = store.label(first)
    assert label.wrong and label.source == "ask-large" and label.conversation_id == 7 and label.message_id == 70
    assert not store.add_label(decision, wrong=False, source="next-message")  # and stays
    assert store.label_counts() == {"auto": {"wrong": 1, "right": 0}}


def test_learned_state_is_one_row_per_policy():
    store = RoutingStore(open_database(":memory:"))
    store.save_learned("auto", {"bias": 0.1, "weights": {"math": 0.5}, "updates": 1})
    store.save_learned("auto", {"bias": 0.2, "weights": {"math": 0.6}, "updates": 2})
    store.save_learned("cascade", {"bias": 0.0, "weights": {}, "updates": 0})
    assert store.load_learned("auto")["updates"] == 2 and store.load_learned("cascade")["updates"] == 0
    store.clear_learned()
    assert store.load_learned("auto") is None and store.load_learned("cascade") is None
