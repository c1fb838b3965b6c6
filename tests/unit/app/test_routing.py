"""Routing configuration: the /large prefix, the policy in force, the large tier, and API routing fields."""

import pytest

from app.core import Ember
from app.routing import RouteRequest, RouterError, api_route, split_force_prefix
from app.services.surface import router_of


@pytest.fixture
def core():
    c = Ember.open()
    yield c
    c.close()


def test_force_prefix():
    assert split_force_prefix("/large  What is 2+2?") == ("What is 2+2?", "large")
    assert split_force_prefix("/small hi") == ("hi", "small")
    assert split_force_prefix("/largest hi") == ("/largest hi", None)
    assert split_force_prefix("What is /large?") == ("What is /large?", None)


def test_policy_request_over_conversation_over_settings(core):
    r = router_of(core)
    assert r.policy_for(None, None) == "off"
    core.settings.router.policy = "cascade"
    assert r.policy_for({}, None) == "cascade"
    assert r.policy_for({"router": "auto"}, None) == "auto"
    assert r.policy_for({"router": "auto"}, RouteRequest(policy="off")) == "off"
    with pytest.raises(RouterError, match="Unknown router policy"):
        r.policy_for({"router": "smart"}, None)


def test_large_tier_resolution(core, monkeypatch):
    with pytest.raises(RouterError, match="No large tier is configured"):
        router_of(core).large_tier()
    monkeypatch.setenv("EMBER_SECRET_ROUTER_REMOTE", "sekrit")
    core.settings.router.retries = 5
    t = router_of(core).large_tier("http://gpu-box:8000/v1#qwen-14b")
    assert t.remote.api_base == "http://gpu-box:8000/v1" and t.remote.model == "qwen-14b"
    assert t.remote.api_key == "sekrit" and t.remote.retries == 5 and t.model_name == "qwen-14b"
    core.settings.router.remote_url = "http://other:1234"
    core.settings.router.remote_model = "big"
    t = router_of(core).large_tier()
    assert t.remote.api_base == "http://other:1234/v1" and t.remote.model == "big"


def test_api_route_fields(core):
    assert api_route(core, None, None) is None
    assert api_route(core, "auto", None) == ("auto", None)
    assert api_route(core, None, "large") == ("off", "large")
    with pytest.raises(RouterError):
        api_route(core, None, "huge")
