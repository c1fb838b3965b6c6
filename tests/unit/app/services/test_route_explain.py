"""The router says why: the CLI line, the API header and the desktop hover, from a reply's ``router`` stats."""

from app.services.route_explain import route_header, router_line, signal_label, why_header, why_of, why_text
from inference.router import RouteDecision, ScoreModel
from ui.reply_stats import tier_badge

WHY = [("numbers", 0.41), ("glimpse_prob_first", -0.2)]


def _small() -> dict:
    return RouteDecision("auto", "small", 0.31, 0.42, {"numbers": 1.0}, 2.0, why=WHY).stats(model="default")


def test_decision_stats_carry_the_top_signals():
    stats = _small()
    assert stats["why"] == [{"signal": "numbers", "push": 0.41}, {"signal": "glimpse_prob_first", "push": -0.2}]
    assert stats["score"] == 0.31 and stats["threshold"] == 0.42 and stats["learned"] is False
    assert why_of(stats) == WHY
    forced = RouteDecision("forced", "large", None, None, {}, 0.0, forced=True).stats(model="big")
    assert "why" not in forced and "learned" not in forced and why_of(forced) == []


def test_the_top_two_are_the_models_largest_pushes():
    model = ScoreModel(bias=0.0, weights={"a": 1.0, "b": -2.0, "c": 0.5})
    assert model.contributions({"a": 1.0, "b": 1.0, "c": 1.0})[:2] == [("a", 1.0), ("c", 0.5)]


def test_cli_line():
    assert router_line(_small()) == ("router: small (auto) score 0.31 < threshold 0.42 — top signals: numbers +0.41, "
                                     "glimpse_prob_first -0.20")
    large = RouteDecision("cascade", "large", 0.8, 0.42, {}, 1.0, escalated=True, learned=True,
                          why=[("answer_entropy_mean", 1.234)]).stats(model="big")
    assert router_line(large) == ("router: large (cascade) score 0.80 >= threshold 0.42 (learned weights) — top "
                                  "signals: answer_entropy_mean +1.23")
    assert router_line({"tier": "large", "policy": "forced"}) == "router: large (forced)"


def test_header_is_ascii_with_raw_names():
    header = route_header(_small())
    assert header == ("small; policy=auto; model=default; score=0.310; threshold=0.420; "
                      "why=numbers:+0.41,glimpse_prob_first:-0.20")
    assert header.isascii()
    assert why_header([("glimpse_prob_first*math", 0.5), ("wé;ird", -1.0)]) == \
        "glimpse_prob_first*math:+0.50,w__ird:-1.00"
    failed = {"tier": "small", "policy": "forced", "model": "mödel; x", "error": "down"}
    assert route_header(failed) == "small; policy=forced; model=m_del__x; error=large-tier-failed"


def test_desktop_hover_uses_readable_names():
    text, hover = tier_badge({"router": _small()})
    assert text == "small"
    assert "router score 0.31 < threshold 0.42" in hover
    assert "top signals: numbers +0.41, first-token confidence -0.20" in hover
    assert signal_label("glimpse_entropy_mean*math") == "glimpse uncertainty × math"
    assert signal_label("something_new") == "something_new"
    assert why_text(WHY) == "numbers +0.41, glimpse_prob_first -0.20"
