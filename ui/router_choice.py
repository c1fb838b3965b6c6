"""The router choice next to the model picker: policy (off/auto/cascade) and the large tier."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from app.settings import RouterSettings
from inference.router import POLICIES


class RouterChoice(QWidget):
    """Signal ``changed(policy, large)``: ``large`` is a library model, a .gguf path, an ``http(s)://`` URL or ""
    (the settings' large tier)."""

    changed = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.policy = QComboBox()
        self.policy.setAccessibleName("Router")
        for value in POLICIES:
            self.policy.addItem(value.capitalize(), value)
        self.policy.setToolTip("Router: off (this model answers), auto (decide before answering whether the large "
                               "tier should), cascade (this model answers first and escalates when unsure)")
        self.large = QComboBox()
        self.large.setAccessibleName("Large tier")
        self.large.setEditable(True)
        self.large.setMinimumWidth(220)
        self.large.lineEdit().setPlaceholderText("library model or http(s)://…/v1 URL")
        self.large.setToolTip("The large tier: a library model, or the base URL of an OpenAI-compatible server "
                              "(its API key is set in Settings, Accounts and tokens). Start a message with /large "
                              "or /small to choose the tier yourself.")
        self.large_label = QLabel("Large tier")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Router"))
        layout.addWidget(self.policy)
        layout.addWidget(self.large_label)
        layout.addWidget(self.large, 1)
        self.policy.activated.connect(lambda _: self._changed())
        self.large.activated.connect(lambda _: self._changed())
        self.large.lineEdit().editingFinished.connect(self._changed)

    def current_policy(self) -> str:
        """``off``, ``auto`` or ``cascade``."""
        return self.policy.currentData()

    def current_large(self) -> str:
        """The large tier typed or chosen ("" for the settings' one)."""
        return self.large.currentText().strip()

    def set_models(self, names: list[str]) -> None:
        """Offer these library models as large tiers (the typed text is kept)."""
        text = self.large.currentText()
        self.large.blockSignals(True)
        self.large.clear()
        self.large.addItems(names)
        self.large.setEditText(text)
        self.large.blockSignals(False)

    def set_settings(self, settings: RouterSettings) -> None:
        """Show the policy and large tier of the settings."""
        self.show_route(settings.policy, settings.remote_url or settings.large_model or "")

    def show_route(self, policy: str, large: str = "") -> None:
        """Show a policy and large tier (an opened conversation's) without emitting ``changed``."""
        self.policy.setCurrentIndex(max(self.policy.findData(policy), 0))
        self.large.setEditText(large)

    def choose(self, policy: str, large: str = "") -> None:
        """Set the policy and large tier (as if the user chose them)."""
        self.policy.setCurrentIndex(self.policy.findData(policy))
        self.large.setEditText(large)
        self._changed()

    def _changed(self) -> None:
        self.changed.emit(self.current_policy(), self.current_large())
