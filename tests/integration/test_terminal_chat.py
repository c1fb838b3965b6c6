"""The interactive terminal chat, driven through input() with the real model."""

import io

import pytest

from app.core import Ember
from app.cli.terminal_chat import interactive
from inference.sampling import SamplingOptions
from tests.greedy import CAPITAL_QUESTION, robust_capital


@pytest.fixture()
def core():
    c = Ember.open()
    yield c
    c.close()


def test_interactive_session_keeps_history_and_new_starts_over(core, monkeypatch):
    core.engine.load(core.model_spec("default")).wait(60)
    core.engine.call(lambda llm: robust_capital(llm, 16)).wait(60)  # "Paris" within 16 tokens, on any CPU
    lines = iter([CAPITAL_QUESTION, "", "/help", "And of Italy?", "/new", "Hello", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    out = io.StringIO()
    code = interactive(core, spec=core.model_spec("default"), options=SamplingOptions(temperature=0, max_tokens=16),
                       system=None, conversation_id=None, verbose=False, out=out)
    assert code == 0
    assert "Paris" in out.getvalue() and "/new" in out.getvalue()
    convs = core.conversations.list()
    assert len(convs) == 2
    counts = sorted(len(core.conversations.messages(c.id)) for c in convs)
    assert counts == [2, 4]


def test_end_of_input_exits_cleanly(core, monkeypatch):
    def eof(prompt=""):
        raise EOFError

    monkeypatch.setattr("builtins.input", eof)
    assert interactive(core, spec=core.model_spec(), options=SamplingOptions(), system="", conversation_id=None,
                       verbose=False, out=io.StringIO()) == 0
