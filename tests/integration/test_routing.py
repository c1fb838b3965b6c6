"""The router on the real starter model: the glimpse, and every policy end to end through ``app.services.chat.Turn``
with a second local GGUF (a Q8_0 requantisation of the starter) and with Ember's own API server as the remote tier.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from app.services.surface import router_of

from app.api import ApiServer
from app.services.chat import Turn, new_conversation, remember_route
from app.core import Ember
from app.paths import Paths
from app.routing import RouteRequest
from inference.requantize import requantized_copy
from inference.chat_prompt import fit_chat_prompt
from inference.route_signals import glimpse
from inference.route_weights import shipped_model
from inference.sampling import SamplingOptions
from tests.greedy import CAPITAL, CAPITAL_QUESTION, assert_greedy_agree, chat_tokens, robust_capital
from tests.helpers import starter_path

GREEDY = SamplingOptions(temperature=0.0, max_tokens=24)
QUESTION = CAPITAL_QUESTION
TOKEN = "remote-token-0123456789"


@pytest.fixture(scope="module")
def q8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return requantized_copy(starter_path(), tmp_path_factory.mktemp("q8"), "q8_0", threads=1)


def _open(home: Path, q8: Path) -> Ember:
    core = Ember.open(Paths(home))
    core.settings.engine.n_threads = 1
    core.settings.engine.n_ctx = 1024
    core.library.add(q8, name="starter-q8")
    return core


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory, q8: Path) -> Iterator[Ember]:
    c = _open(tmp_path_factory.mktemp("ember-routing"), q8)
    yield c
    c.close()


@pytest.fixture(scope="module", autouse=True)
def robust_question(core: Ember) -> None:
    """The small model names Paris within GREEDY's tokens with a wide margin at every step, so the tests below may
    expect it on any CPU."""
    core.engine.load(core.model_spec("default")).wait(60)
    core.engine.call(lambda llm: robust_capital(llm, GREEDY.max_tokens)).wait(60)


def agree(core: Ember, a: str, b: str) -> None:
    """Two greedy answers of the small model to QUESTION agree up to a near-tie (tests.greedy)."""
    core.engine.call(lambda llm: assert_greedy_agree(llm, chat_tokens(llm, CAPITAL, GREEDY.max_tokens), a, b)
                     ).wait(60)


@pytest.fixture(autouse=True)
def router_settings(core: Ember) -> Iterator[None]:
    saved = core.settings.router.model_dump()
    yield
    for k, v in saved.items():
        setattr(core.settings.router, k, v)


def _turn(core: Ember, text: str, route: RouteRequest | None = None):
    conv = new_conversation(core, model="default")
    turn = Turn(core, conv.id, text, spec=core.model_spec("default"), options=GREEDY, route=route)
    result = turn.wait(120)
    return conv, turn, result


def test_glimpse_measures_uncertainty_and_keeps_the_prompt_cached(core):
    spec = core.model_spec("default")
    core.engine.load(spec).wait(60)
    msgs = CAPITAL

    def clear(llm):
        llm.clear()

    core.engine.call(clear).wait(60)
    reference = core.engine.chat(msgs, GREEDY, model=spec).wait(60)  # no glimpse before it

    def run(llm):
        prompt = fit_chat_prompt(llm, msgs, GREEDY.max_tokens).tokens
        llm.clear()
        llm.ingest_prompt(prompt)
        before = llm.next_logits()
        g = glimpse(llm, prompt, n_tokens=3)
        return prompt, g, list(llm.tokens), before, llm.next_logits()

    prompt, g, cached, before, after = core.engine.call(run).wait(60)
    assert len(g.steps) == 3 and len(g.tokens) == 3
    assert all(s.entropy >= 0 and s.logprob <= 0 and 0 <= s.margin <= 1 for s in g.steps)
    assert cached == prompt  # the glimpse's tokens were rolled back; the prompt's KV entries stay
    assert before is not None and after is not None and (after == before).all()  # and its next-token logits
    answer = core.engine.chat(msgs, GREEDY, model=spec).wait(60)
    assert answer.stats.cached_tokens == len(prompt)  # the answer evaluated nothing of the prompt again
    assert "Paris" in answer.text
    agree(core, answer.text, reference.text)


def test_auto_keeps_an_easy_query_on_the_small_tier_and_reuses_its_prefill(core):
    core.settings.router.budget = 0.0  # never escalate
    conv, turn, result = _turn(core, QUESTION, RouteRequest(policy="auto", large="starter-q8"))
    r = result.stats.router
    assert r["tier"] == "small" and r["policy"] == "auto" and not r["escalated"] and 0 <= r["score"] <= 1
    assert result.stats.cached_tokens == result.stats.prompt_tokens  # the glimpse's prefill served the answer
    stored = router_of(core).store.list(conversation_id=conv.id)
    assert len(stored) == 1 and stored[0].message_id == turn.message.id and stored[0].tier == "small"
    assert "glimpse_entropy_first" in stored[0].signals and "math" in stored[0].signals
    model, _ = router_of(core).score_model("auto", stored[0].signals)  # the router says why: the top two terms
    assert r["threshold"] >= 1 and [w["signal"] for w in r["why"]] == [
        n for n, _ in model.contributions(stored[0].signals)[:2]]
    assert turn.message.stats["router"]["tier"] == "small"


def test_auto_escalates_to_a_second_local_gguf(core):
    core.settings.router.budget = 1.0  # always escalate
    conv, turn, result = _turn(core, "What is 17 times 23?", RouteRequest(policy="auto", large="starter-q8"))
    r = result.stats.router
    assert r["tier"] == "large" and r["escalated"] and r["model"] == "starter-q8"
    assert result.text and turn.message.content == result.text
    assert core.engine.loaded.name != "starter-q8"  # the small model stayed loaded; the large tier has its own
    assert router_of(core).store.list(conversation_id=conv.id)[0].large_target == "starter-q8"
    # ... slot in the one engine: one worker thread computes for both models, and /health reports both
    assert core.engine.loaded_in("large").name == "starter-q8"
    assert {m["slot"]: m["name"] for m in core.engine.models()} == {"chat": core.engine.loaded.name,
                                                                    "large": "starter-q8"}
    on = [core.engine.call(lambda m: (m.path.name, threading.current_thread()), slot=s).wait(60)
          for s in ("chat", "large")]
    assert on[0][0] != on[1][0] and on[0][1] is on[1][1]


def test_cascade_keeps_or_escalates_on_the_whole_answer(core):
    core.settings.router.budget = 0.0
    _, _, kept = _turn(core, QUESTION, RouteRequest(policy="cascade", large="starter-q8"))
    assert kept.stats.router["tier"] == "small" and "Paris" in kept.text
    core.settings.router.budget = 1.0
    conv, _, escalated = _turn(core, QUESTION, RouteRequest(policy="cascade", large="starter-q8"))
    assert escalated.stats.router["tier"] == "large" and escalated.stats.router["policy"] == "cascade"
    rec = router_of(core).store.list(conversation_id=conv.id)[0]
    assert "answer_entropy_mean" in rec.signals and rec.escalated


def test_a_streamed_cascade_retracts_the_small_answer_when_it_escalates(core):
    from inference.events import Retracted, TokenText

    route = RouteRequest(policy="cascade", large="starter-q8")
    runs = {}
    for budget in (0.0, 1.0):
        core.settings.router.budget = budget
        conv = new_conversation(core, model="default")
        events = []
        turn = Turn(core, conv.id, QUESTION, spec=core.model_spec("default"), options=GREEDY, route=route,
                    on_event=events.append, stream_cascade=True)
        result = turn.wait(120)
        runs[budget] = (events, result, turn)
    events, kept, turn = runs[0.0]
    assert kept.stats.router["tier"] == "small" and not any(isinstance(e, Retracted) for e in events)
    texts = [e.text for e in events if isinstance(e, TokenText)]
    assert len(texts) > 1 and "".join(texts) == kept.text == turn.message.content  # streamed as it was written
    events, escalated, turn = runs[1.0]
    assert escalated.stats.router["tier"] == "large"
    cut = next(i for i, e in enumerate(events) if isinstance(e, Retracted))
    before = "".join(e.text for e in events[:cut] if isinstance(e, TokenText))
    after = "".join(e.text for e in events[cut + 1:] if isinstance(e, TokenText))
    agree(core, before, kept.text)  # the small answer (its prompt now cached: up to a near-tie), then withdrawn
    assert after == escalated.text == turn.message.content  # only the large tier's answer is stored


def test_a_conversation_remembers_its_routing(core):
    core.settings.router.budget = 0.0
    assert core.settings.router.policy == "off"
    conv, _, _ = _turn(core, QUESTION, RouteRequest(policy="auto", large="starter-q8"))
    stored = core.conversations.get(conv.id).settings
    assert stored["router"] == "auto" and stored["router_large"] == "starter-q8"
    later = Turn(core, conv.id, "And of Italy?", spec=core.model_spec("default"), options=GREEDY)  # no route
    assert later.wait(120).stats.router["policy"] == "auto"
    assert [r.large_target for r in router_of(core).store.list(conversation_id=conv.id)] == ["starter-q8"] * 2
    off = Turn(core, conv.id, "And of Spain?", spec=core.model_spec("default"), options=GREEDY,
               route=RouteRequest(policy="off"))
    assert off.wait(120).stats.router is None
    assert core.conversations.get(conv.id).settings["router"] == "off"
    again = Turn(core, conv.id, "And of Peru?", spec=core.model_spec("default"), options=GREEDY,
                 route=RouteRequest(policy="auto"))  # a policy without a large tier keeps the stored one
    assert again.wait(120).stats.router["policy"] == "auto"
    assert router_of(core).store.list(conversation_id=conv.id)[0].large_target == "starter-q8"
    assert core.conversations.get(conv.id).settings["router_large"] == "starter-q8"
    remember_route(core, core.conversations.get(conv.id), RouteRequest(policy="auto", large=""))
    assert "router_large" not in core.conversations.get(conv.id).settings  # "": the settings' large tier


def test_large_prefix_forces_the_large_tier_and_is_not_stored(core):
    conv, turn, result = _turn(core, "/large " + QUESTION, RouteRequest(large="starter-q8"))
    assert result.stats.router["tier"] == "large" and result.stats.router["policy"] == "forced"
    assert turn.user_message.content == QUESTION
    rec = router_of(core).store.list(conversation_id=conv.id)[0]
    assert rec.forced and rec.score is None


def test_escalation_to_a_remote_ember_server(core, q8, tmp_path, monkeypatch):
    remote = _open(tmp_path / "remote-home", q8)
    server = ApiServer(remote, port=0, token=TOKEN).start()
    try:
        monkeypatch.setenv("EMBER_SECRET_ROUTER_REMOTE", TOKEN)  # the key, as the keyring would hold it
        core.settings.router.budget = 1.0
        _, turn, result = _turn(core, QUESTION, RouteRequest(policy="auto", large=f"{server.address}/v1#starter-q8"))
        r = result.stats.router
        assert r["tier"] == "large" and r["model"] == "starter-q8" and "error" not in r
        assert "Paris" in result.text and turn.message.content == result.text
        assert remote.engine.loaded.name == "starter-q8"
        remote.engine.call(lambda llm: robust_capital(llm, GREEDY.max_tokens)).wait(60)  # so on any CPU too
    finally:
        server.stop()
        remote.close()


def test_an_unreachable_remote_keeps_the_small_answer_with_a_clear_error(core):
    core.settings.router.retries = 0
    core.settings.router.connect_timeout = 1.0
    t0 = time.monotonic()
    conv, turn, result = _turn(core, "/large " + QUESTION, RouteRequest(large="http://127.0.0.1:9/v1#big"))
    assert time.monotonic() - t0 < 30
    r = result.stats.router
    assert r["tier"] == "small" and "cannot connect" in r["error"] and "127.0.0.1:9" in r["error"]
    assert "The large tier failed" in result.text and "Paris" in result.text
    assert router_of(core).store.list(conversation_id=conv.id)[0].error == r["error"]


def test_api_routes_per_request_and_reports_the_tier_openai_and_ollama(core):
    import httpx

    core.settings.router.large_model = "starter-q8"
    core.settings.router.budget = 0.0
    server = ApiServer(core, port=0, token=TOKEN).start()
    try:
        with httpx.Client(base_url=server.address, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
            body = {"model": "default", "messages": [{"role": "user", "content": QUESTION}], "temperature": 0,
                    "max_tokens": 16}
            forced = c.post("/v1/chat/completions", json={**body, "ember": {"tier": "large"}})
            assert forced.status_code == 200, forced.text
            assert forced.headers["X-Ember-Route"].startswith("large; policy=forced; model=starter-q8")
            assert forced.json()["ember"]["stats"]["router"]["tier"] == "large"
            auto = c.post("/v1/chat/completions", json={**body, "ember": {"router": "auto"}})
            route = auto.headers["X-Ember-Route"]
            assert route.startswith("small; policy=auto") and "score=" in route and "threshold=" in route
            why = auto.json()["ember"]["stats"]["router"]["why"]
            assert route.endswith("; why=" + ",".join(f"{w['signal']}:{w['push']:+.2f}" for w in why))
            assert route.isascii() and len(why) == 2
            plain = c.post("/v1/chat/completions", json=body)
            assert "X-Ember-Route" not in plain.headers and "router" not in plain.json()["ember"]["stats"]
            ollama = {"model": "default", "messages": body["messages"], "stream": False,
                      "options": {"temperature": 0, "num_predict": 16}}
            forced = c.post("/api/chat", json={**ollama, "ember": {"tier": "large"}})
            assert forced.status_code == 200, forced.text
            assert forced.headers["X-Ember-Route"].startswith("large; policy=forced; model=starter-q8")
            assert forced.json()["ember"]["stats"]["router"]["tier"] == "large"
            assert "X-Ember-Route" not in c.post("/api/chat", json=ollama).headers
            bad = c.post("/api/chat", json={**ollama, "ember": {"router": "sometimes"}})
            assert bad.status_code == 400 and "router" in bad.json()["error"]
            generate = {"model": "default", "prompt": QUESTION, "stream": False,
                        "options": {"temperature": 0, "num_predict": 16}}
            forced = c.post("/api/generate", json={**generate, "ember": {"tier": "large"}})
            assert forced.status_code == 200, forced.text
            assert forced.headers["X-Ember-Route"].startswith("large; policy=forced; model=starter-q8")
            assert forced.json()["ember"]["stats"]["router"]["tier"] == "large" and forced.json()["response"]
            raw = c.post("/api/generate", json={**generate, "raw": True, "ember": {"tier": "large"}})
            assert raw.status_code == 400 and "raw prompt cannot be routed" in raw.json()["error"]
            completion = c.post("/v1/completions", json={"model": "default", "prompt": QUESTION, "max_tokens": 4,
                                                          "ember": {"router": "auto"}})
            assert completion.status_code == 400 and "/v1/chat/completions" in completion.text
    finally:
        server.stop()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_terminal_streams_a_cascade_and_says_when_the_answer_is_withdrawn(core):
    from app.cli.terminal_chat import one_shot

    route = RouteRequest(policy="cascade", large="starter-q8")
    spec = core.model_spec("default")
    core.settings.router.budget = 0.0
    kept = _Terminal()
    assert one_shot(core, QUESTION, spec=spec, options=GREEDY, system=None, conversation_id=None, verbose=False,
                    out=kept, route=route) == 0
    assert "withdrawn" not in kept.getvalue() and "Paris" in kept.getvalue()
    core.settings.router.budget = 1.0
    for out in (_Terminal(), io.StringIO()):
        conv = new_conversation(core, model="default")
        one_shot(core, QUESTION, spec=spec, options=GREEDY, system=None, conversation_id=conv.id, verbose=False,
                 out=out, route=route)
        stored = core.conversations.messages(conv.id)[-1].content
        if out.isatty():  # the small answer as it was written, the notice, then the large answer
            value = out.getvalue()
            cut = value.index("[answer withdrawn. The small model")
            assert value[cut - 1] == "\n"
            agree(core, value[:cut - 1], kept.getvalue()[:-1])  # the same small answer, up to a near-tie
            notice, large = value[cut:].split("\n", 1)
            assert large == f"{stored}\n"
        else:  # piped: the kept answer alone
            assert out.getvalue() == f"{stored}\n"


@pytest.mark.parametrize("policy", ["auto", "cascade"])
def test_a_routed_turn_in_a_conversation_longer_than_the_context_drops_old_turns_like_the_engine(core, policy):
    core.settings.router.budget = 0.0  # the small model keeps it
    conv = new_conversation(core, model="default")
    for i in range(12):  # about 1,800 tokens of history against the 1,024-token context
        core.conversations.add_message(conv.id, "user", f"Tell me fact number {i} about rivers. " + "Water " * 60)
        core.conversations.add_message(conv.id, "assistant", "Rivers flow downhill to the sea. " * 12)
    turn = Turn(core, conv.id, QUESTION, spec=core.model_spec("default"), options=GREEDY,
                route=RouteRequest(policy=policy, large="starter-q8"))
    result = turn.wait(120)
    assert result.stats.router["tier"] == "small" and result.stats.router["policy"] == policy
    assert result.stats.trimmed_messages and result.text.strip()
    if policy == "auto":  # the answer started from the glimpse's prefill: the same trimmed prompt
        assert result.stats.cached_tokens == result.stats.prompt_tokens


def test_large_after_a_small_answer_labels_it_wrong_and_the_router_learns(core):
    router = router_of(core)
    router.reset_learning()
    core.settings.router.budget = 0.0  # the small tier answers every routed turn
    route = RouteRequest(policy="auto", large="starter-q8")
    question = "What is 17 times 23?"
    conv, turn, result = _turn(core, question, route)
    assert result.stats.router["tier"] == "small"
    decision = router.store.latest_decision(message_id=turn.message.id)
    before = router.learned_score("auto", decision.signals)
    again = Turn(core, conv.id, "/large " + question, spec=core.model_spec("default"), options=GREEDY)
    assert again.wait(120).stats.router["tier"] == "large"
    label = router.store.label(decision.id)
    assert label.wrong and label.source == "large-prefix" and label.conversation_id == conv.id
    assert router.learned_score("auto", decision.signals) > before

    _, turn, learned = _turn(core, question, route)  # scored with what it learned
    rec = router.store.latest_decision(message_id=turn.message.id)
    assert learned.stats.router["learned"]
    assert learned.stats.router["score"] == pytest.approx(router.learned_score("auto", rec.signals), abs=1e-4)
    core.settings.router.learn = False  # the shipped weights
    _, turn, shipped = _turn(core, question, route)
    rec = router.store.latest_decision(message_id=turn.message.id)
    assert not shipped.stats.router["learned"]
    model = shipped_model("auto", probe="hidden_probe" in rec.signals)
    assert shipped.stats.router["score"] == pytest.approx(model.score(rec.signals), abs=1e-4)
    router.reset_learning()


def test_going_on_from_a_small_answer_accepts_it_and_large_alone_asks_again(core, capsys):
    from app.cli.terminal_chat import one_shot

    router = router_of(core)
    core.settings.router.budget = 0.0
    route = RouteRequest(policy="auto", large="starter-q8")
    conv = new_conversation(core, model="default")
    assert one_shot(core, QUESTION, spec=core.model_spec("default"), options=GREEDY, system=None,
                    conversation_id=conv.id, verbose=True, out=io.StringIO(), route=route) == 0
    err = capsys.readouterr().err
    assert "router: small (auto) score " in err and "< threshold" in err and "top signals: " in err
    first = router.store.latest_decision(conversation_id=conv.id)
    assert router.store.label(first.id) is None
    follow = Turn(core, conv.id, "And of Italy?", spec=core.model_spec("default"), options=GREEDY)
    assert follow.wait(120).stats.router["tier"] == "small"
    label = router.store.label(first.id)
    assert label is not None and not label.wrong and label.source == "next-message"

    second = router.store.latest_decision(message_id=follow.message.id)
    large = Turn(core, conv.id, "/large", spec=core.model_spec("default"), options=GREEDY)  # the same question
    assert large.wait(120).stats.router["tier"] == "large"
    assert large.user_message.id == follow.user_message.id  # not stored again: a new version of the reply
    assert core.conversations.versions(conv.id)[large.message.id].count == 2
    assert router.store.label(second.id).wrong and router.store.label(first.id).wrong is False
    router.reset_learning()
