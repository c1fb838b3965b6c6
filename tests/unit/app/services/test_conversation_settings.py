"""A conversation's own settings, declared once, and the one rule for a continued conversation's sampling."""

import logging

from app.services.conversation_settings import ConversationSettings, turn_sampling
from inference.sampling import SamplingOptions


def test_stored_settings_round_trip_and_keep_keys_they_do_not_declare():
    own = ConversationSettings.of({"system_prompt": "Be brief.", "sampling": {"temperature": 0.2},
                                   "router": "auto", "future_key": [1]})
    assert own.system_prompt == "Be brief." and own.sampling.temperature == 0.2 and own.router == "auto"
    stored = own.stored()
    assert stored["future_key"] == [1] and stored["sampling"]["temperature"] == 0.2
    assert "router_large" not in stored and ConversationSettings.of(stored) == own


def test_an_invalid_stored_value_falls_back_to_the_settings(caplog):
    caplog.set_level(logging.INFO)
    own = ConversationSettings.of({"sampling": {"temperature": 99}, "system_prompt": "kept"}, conversation_id=7)
    assert own.sampling is None and own.system_prompt == "kept"
    assert "conversation 7: stored sampling invalid" in caplog.text


def test_a_turn_uses_the_conversation_sampling_else_the_settings():
    settings = SamplingOptions(temperature=0.7)
    assert turn_sampling(settings, {"sampling": {"temperature": 0.1}}).temperature == 0.1
    assert turn_sampling(settings, {}) is settings and turn_sampling(settings, None) is settings
    assert turn_sampling(settings, {"sampling": {}}) is settings
