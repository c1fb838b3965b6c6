"""``ember router status|reset``: the labels and what the router learned, and going back to the shipped weights."""

import json

from app.cli.main import main
from app.core import Ember
from app.services.surface import router_of


def test_status_shows_labels_and_reset_forgets_the_learned_state(capsys):
    core = Ember.open()
    try:
        store = router_of(core).store
        decision = store.decision(store.record(policy="auto", tier="small", score=0.2, threshold=0.5,
                                               signals={"math": 1.0}, decision_ms=1.0))
        router_of(core).label(decision, wrong=True, source="large-prefix")
    finally:
        core.close()
    assert main(["router", "status"]) == 0
    out = capsys.readouterr().out
    assert "router.learn: on" in out and "auto: 1 escalated, 0 kept" in out and "  auto: 1 updates" in out
    assert "validation AUROC learned" in out or "no validation split" in out
    assert main(["router", "reset"]) == 0
    assert "shipped weights" in capsys.readouterr().out
    assert main(["router", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["policies"]["auto"]["models"]["auto"]["updates"] == 0 and status["policies"]["auto"]["wrong"] == 1
