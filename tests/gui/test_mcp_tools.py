"""MCP tools in the chat window, against a real stdio MCP server (tests/mcp_server.py) and the real starter model:
the call is shown and asked about, approval runs it and the reply continues with its result, denial does not run
it, a server that dies mid-call gives a message while the window stays responsive, and calls survive a restart."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage

from app.services.chat import history, new_conversation
from app.core import Ember
from storage.tool_calls import ToolCallStore
from tests.gui.conftest import gui_settings, shut_down_windows
from tests.gui.gui_helpers import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS, send

SERVER = Path(__file__).resolve().parents[1] / "mcp_server.py"
START_TIMEOUT_MS = 60_000


@pytest.fixture
def calls_log(tmp_path: Path) -> Path:
    """The file the test server appends each tool it runs to."""
    return tmp_path / "calls.log"


@pytest.fixture
def core(ember_home: Path, starter: Path, calls_log: Path) -> Iterator[Ember]:
    settings = gui_settings(max_tokens=40)
    settings.mcp.servers = {"notes": shlex.join([f"EMBER_TEST_CALLS={calls_log}", sys.executable, str(SERVER)])}
    settings.mcp.call_timeout = 20.0
    core = Ember.open(settings=settings)
    yield core
    shut_down_windows(core)
    core.close()


def ran(calls_log: Path) -> list[str]:
    return calls_log.read_text().split() if calls_log.exists() else []


def tool_chat(qtbot, win, choice: str) -> int:
    """A conversation whose replies must call ``choice``, with the test server switched on from the Tools menu."""
    conv = new_conversation(win.core, model=win.session.model_name)
    win.core.conversations.update(conv.id, settings={**conv.settings, "tool_choice": choice})
    win.conversations.refresh()
    win.session.open(conv.id)
    action = next(a for a in win.extras_bar.tools_menu.actions() if a.text().startswith("notes"))
    assert not action.isChecked()
    action.trigger()
    qtbot.waitUntil(lambda: win.tools.ready("notes"), timeout=START_TIMEOUT_MS)
    assert [t.name for t in win.tools.tools["notes"]] == ["add", "read_note", "crash", "wait"]
    assert win.extras_bar.tools_button.text() == "Tools: notes"
    assert win.tools.enabled() == ["notes"]
    return conv.id


def only_card(qtbot, win):
    assert len(win.tools.cards) == 1
    card = next(iter(win.tools.cards.values()))
    qtbot.waitUntil(lambda: card.isVisibleTo(win))  # a widget added to a shown one is shown by a queued call
    return card


class LagMeter:
    """The longest gap between ticks of a 10 ms timer on the GUI thread."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self._last)
        self._last = now

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def save_shot(win, tmp_path: Path, name: str) -> None:
    out = Path(os.environ.get("EMBER_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    assert win.grab().save(str(path))
    image = QImage(str(path))
    assert image.width() >= 700 and image.height() >= 500


def test_screenshot_allowed_call_runs_and_the_reply_continues_with_its_result(qtbot, window, calls_log, tmp_path):
    window.resize(1120, 740)
    conv_id = tool_chat(qtbot, window, "add")
    reply = send(qtbot, window, "What is 2 + 3? Use the add tool.")
    calls = ToolCallStore(window.core.conversations.database).for_message(reply.id)
    assert [c.name for c in calls] == ["add"] and calls[0].state == "pending" and calls[0].server == "notes"
    args = json.loads(calls[0].arguments)
    assert set(args) == {"a", "b"} and all(isinstance(v, int) for v in args.values())
    # the call is shown under the reply, with its arguments, and asked about before it runs
    card = only_card(qtbot, window)
    assert card.buttons.isVisibleTo(window)
    assert "add" in card.title.text() and json.loads(card.arguments.text()) == args
    assert "<tool_call>" not in window.chat_view.message_widgets[-1].body.text
    assert ran(calls_log) == []
    save_shot(window, tmp_path, "mcp-approval.png")

    with qtbot.waitSignal(window.session.replyFinished, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(card.allow_button, Qt.MouseButton.LeftButton)
    follow = blocker.args[0]
    assert ran(calls_log) == ["add"]
    call = ToolCallStore(window.core.conversations.database).get(calls[0].id)
    assert call.state == "done" and call.result == str(args["a"] + args["b"])
    assert not card.buttons.isVisible() and card.result_text == call.result
    assert card.result_toggle.isVisible() and not card.result.isVisible(), "the result is folded"
    # the model continued: a new reply after the calling one, written with the tool's result in its prompt
    assert follow.id != reply.id and follow.stats["finish_reason"] in ("stop", "length")
    assert window.core.conversations.message(follow.id).parent_id == reply.id
    sent = history(window.core, window.core.conversations.get(conv_id))
    tool_msgs = [m for m in sent if m["role"] == "tool"]
    assert tool_msgs == [{"role": "tool", "tool_call_id": call.call_id, "name": "add", "content": call.result}]
    calling = [m for m in sent if m.get("tool_calls")]
    assert [c["tool_calls"][0]["arguments"] for c in calling] == [args]
    assert sent.index(tool_msgs[0]) == sent.index(calling[0]) + 1
    assert follow.stats["prompt_tokens"] > reply.stats["prompt_tokens"]
    assert [w.message.id for w in window.chat_view.message_widgets][-2:] == [reply.id, follow.id]
    qtbot.mouseClick(card.result_toggle, Qt.MouseButton.LeftButton)
    assert card.result.isVisible()
    save_shot(window, tmp_path, "mcp-tool-call.png")


def test_denied_call_is_not_run_and_calls_survive_a_restart(qtbot, window, calls_log):
    conv_id = tool_chat(qtbot, window, "read_note")
    reply = send(qtbot, window, "Read my shopping note.")
    card = only_card(qtbot, window)
    with qtbot.waitSignal(window.session.replyFinished, timeout=REPLY_TIMEOUT_MS):
        qtbot.mouseClick(card.deny_button, Qt.MouseButton.LeftButton)
    assert ran(calls_log) == [], "a denied call never reaches the server"
    store = ToolCallStore(window.core.conversations.database)
    [call] = store.for_message(reply.id)
    assert call.state == "denied" and card.state_label.text() == "not allowed"
    sent = history(window.core, window.core.conversations.get(conv_id))
    assert [m["content"] for m in sent if m["role"] == "tool"] == ["The user did not allow this call; it was not run."]
    assert window.tools.hub.running() == ["notes"]
    action = next(a for a in window.extras_bar.tools_menu.actions() if a.text().startswith("notes"))
    action.trigger()  # switched off: the server's process is stopped
    assert window.tools.enabled() == []
    qtbot.waitUntil(lambda: window.tools.hub.running() == [], timeout=START_TIMEOUT_MS)
    action = next(a for a in window.extras_bar.tools_menu.actions() if a.text().startswith("notes"))
    action.trigger()

    # another process on the same data: the call and its answer are shown again
    from app.services.models import model_services
    from ui.main_window import MainWindow

    again = Ember.open(settings=window.core.settings)
    try:
        win2 = MainWindow(again, model_services(again))
        qtbot.addWidget(win2)
        win2.session.open(conv_id)
        assert [c.call.id for c in win2.tools.cards.values()] == [call.id]
        shown = next(iter(win2.tools.cards.values()))
        assert shown.state_label.text() == "not allowed" and not shown.buttons.isVisibleTo(win2)
        assert win2.tools.enabled() == ["notes"]
        win2.shutdown()
    finally:
        again.close()


def test_always_allow_runs_later_calls_without_asking(qtbot, window, calls_log):
    tool_chat(qtbot, window, "add")
    send(qtbot, window, "Add 1 and 2.")
    card = only_card(qtbot, window)
    with qtbot.waitSignal(window.session.replyFinished, timeout=REPLY_TIMEOUT_MS):
        qtbot.mouseClick(card.always_button, Qt.MouseButton.LeftButton)
    assert ran(calls_log) == ["add"]
    assert window.session.conversation().settings["mcp_always"] == ["add"]
    # the next question's call runs at once; the reply after it follows
    with qtbot.waitSignal(window.tools.callFinished, timeout=REPLY_TIMEOUT_MS):
        window.composer.input.setPlainText("Now add 4 and 5.")
        qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    assert ran(calls_log) == ["add", "add"]
    qtbot.waitUntil(lambda: not window.session.busy, timeout=REPLY_TIMEOUT_MS)


def test_server_that_dies_mid_call_gives_a_message_and_the_window_stays_responsive(qtbot, window, calls_log):
    tool_chat(qtbot, window, "crash")
    send(qtbot, window, "Crash the server.")
    card = only_card(qtbot, window)
    meter = LagMeter()
    with qtbot.waitSignal(window.tools.callFinished, timeout=REPLY_TIMEOUT_MS):
        qtbot.mouseClick(card.allow_button, Qt.MouseButton.LeftButton)
    lag = meter.stop()
    assert ran(calls_log) == ["crash"]
    assert card.call.state == "error" and "stopped during the call to crash" in card.result_text
    assert card.result.isVisible(), "an error is shown unfolded"
    assert window.banner.isVisible() and "stopped during the call" in window.banner.label.text()
    assert lag < 0.1, f"the event loop stalled for {lag * 1000:.0f} ms"
    # the model is told and continues; the server starts again on the next use
    qtbot.waitUntil(lambda: not window.session.busy, timeout=REPLY_TIMEOUT_MS)
    future = window.tools.hub.call("notes", "add", {"a": 1, "b": 1})
    qtbot.waitUntil(future.done, timeout=START_TIMEOUT_MS)
    assert future.result().text == "2"
