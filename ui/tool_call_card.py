"""One tool call under a reply: the tool and its arguments, the question before it runs (allow once / always
for this tool / deny), then its result folded away."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QVBoxLayout, QWidget

from storage.tool_calls import StoredCall

SHOWN_CHARS = 2000  # a longer result is cut in the card (the model gets all of it)
STATE_TEXT = {"pending": "waiting for your answer", "running": "running…", "done": "done",
              "error": "failed", "denied": "not allowed"}

CARD_STYLE = """
QFrame#toolCall { border: 1px solid palette(mid); border-radius: 8px; background: palette(alternate-base); }
QFrame#toolCall[state="error"] { border-color: #c0392b; }
QLabel#toolTitle { font-weight: 600; }
QLabel#toolState { color: palette(placeholder-text); }
"""


def pretty_arguments(arguments: str) -> str:
    """A call's arguments (JSON text) indented for reading; the raw text when it is not JSON."""
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments


class ToolCallCard(QFrame):
    """Shows a stored call and, while it is pending, asks whether to run it.

    Signals: ``answered(call_row_id, answer)`` with answer ``once``, ``always`` or ``deny``.
    """

    answered = Signal(int, str)

    def __init__(self, call: StoredCall, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolCall")
        self.setStyleSheet(CARD_STYLE)
        self.call = call
        where = f" · {call.server}" if call.server else ""
        self.title = QLabel(f"Tool call: {call.name}{where}")
        self.title.setObjectName("toolTitle")
        self.state_label = QLabel()
        self.state_label.setObjectName("toolState")
        self.arguments = QLabel(pretty_arguments(call.arguments))
        self.arguments.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.arguments.setStyleSheet("font-family: monospace;")
        self.arguments.setAccessibleName(f"Arguments of {call.name}")
        self.allow_button = QPushButton("Allow once")
        self.allow_button.setObjectName("primary")
        self.always_button = QPushButton(f"Always allow {call.name}")
        self.deny_button = QPushButton("Deny")
        for button, answer, tip in ((self.allow_button, "once", "Run this call now"),
                                    (self.always_button, "always",
                                     f"Run this call and later calls of {call.name} in this conversation "
                                     "without asking"),
                                    (self.deny_button, "deny", "Do not run it; the model is told so")):
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, a=answer: self.answered.emit(self.call.id, a))
        self.result_toggle = QToolButton(text="▸ Result")
        self.result_toggle.setAutoRaise(True)
        self.result_toggle.setCheckable(True)
        self.result_toggle.setToolTip("Show or fold the tool's result")
        self.result_toggle.toggled.connect(self._fold)
        self.result = QLabel()
        self.result.setTextFormat(Qt.TextFormat.PlainText)
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setStyleSheet("font-family: monospace; background: palette(base); padding: 4px;")
        self.result.setAccessibleName(f"Result of {call.name}")
        self._full_result = ""
        self.result.hide()

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.state_label)
        self.buttons = QWidget()
        row = QHBoxLayout(self.buttons)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Run this tool?"))
        row.addStretch(1)
        row.addWidget(self.deny_button)
        row.addWidget(self.always_button)
        row.addWidget(self.allow_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(10, 6, 10, 6)
        box.setSpacing(4)
        box.addLayout(head)
        box.addWidget(self.arguments)
        box.addWidget(self.buttons)
        box.addWidget(self.result_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        box.addWidget(self.result)
        self.set_call(call)

    def set_call(self, call: StoredCall) -> None:
        """Show the call's new state (and its result once it has one)."""
        self.call = call
        self.state_label.setText(STATE_TEXT.get(call.state, call.state))
        self.setProperty("state", call.state)
        self.style().unpolish(self)
        self.style().polish(self)
        self.buttons.setVisible(call.state == "pending")
        has_result = call.state in ("done", "error") and bool(call.result)
        self.result_toggle.setVisible(has_result)
        if has_result:
            self._full_result = call.result
            shown = call.result if len(call.result) <= SHOWN_CHARS else call.result[:SHOWN_CHARS] + " …"
            self.result.setText(shown)
            if call.state == "error":
                self.result_toggle.setChecked(True)  # an error is shown at once
        self._fold(self.result_toggle.isChecked() and has_result)

    @property
    def result_text(self) -> str:
        """The call's result (folded or not)."""
        return self._full_result

    def _fold(self, shown: bool) -> None:
        self.result.setVisible(shown)
        self.result_toggle.setText(("▾ " if shown else "▸ ") + ("Error" if self.call.state == "error" else "Result"))
