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
